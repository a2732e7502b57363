"""digmat: Distributional Graphormer (DiG) for equilibrium distributions of atomic structures.

Public API (imported lazily, so ``import digmat`` stays light):

- :func:`sample_adsorbates` — the main job: equilibrium adsorbate configurations on a slab,
  grouped into sites with probabilities;
- :func:`load_model` — a shipped model or any digmat checkpoint;
- :func:`read_slab`, :func:`build_slab`, :func:`get_adsorbate` — OC20-convention inputs;
- :func:`get_calculator` — named ASE calculators (emt, chgnet, sevenn);
- :func:`band_gap` — the carbon tight-binding band-gap oracle.

The diffusion mathematics lives in :mod:`digmat.core` (chemistry-free), networks in
:mod:`digmat.nn`, state adapters in :mod:`digmat.systems`, symmetry checks in
:mod:`digmat.testing`.
"""

from importlib import import_module

__version__ = "0.1.0"

_LAZY = {
    "sample_adsorbates": "digmat.tasks.sampling",
    "load_model": "digmat.pretrained",
    "read_slab": "digmat.adsorption",
    "build_slab": "digmat.adsorption",
    "get_adsorbate": "digmat.adsorption",
    "get_calculator": "digmat.calculators",
    "band_gap": "digmat.design",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'digmat' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
