"""digmat: Distributional Graphormer (DiG) for equilibrium distributions of atomic structures.

The diffusion mathematics lives in :mod:`digmat.core` (chemistry-free, batched torch);
networks in :mod:`digmat.nn`; symmetry checks users can run on their own models in
:mod:`digmat.testing`. Importing :mod:`digmat` imports nothing heavy.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
