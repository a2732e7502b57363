"""Adapters between ``ase.Atoms`` and diffusion states (the only place that knows how).

- :class:`AdsorbateSystem` — an adsorbate on a slab: anchor atom's in-plane position on the
  surface torus, its height and the internal geometry in Euclidean coordinates.
- :class:`PeptideSystem` — a capped peptide: backbone φ/ψ and side-chain χ on the torsion torus,
  bonds and angles from a force-field template.
- :class:`CrystalSystem` — a periodic crystal: fractional coordinates on the unit torus and the
  lattice as the matrix logarithm of its metric (Niggli-reduced, canonical).

Both implement :class:`SystemAdapter` (``tests/systems/test_protocol.py`` checks every adapter).
"""

from .protocol import SystemAdapter
from .adsorbate import AdsorbateStateConfig, AdsorbateSystem
from .crystal import CrystalStateConfig, CrystalSystem, canonical_cell
from .peptide import PeptideSystem

__all__ = ["SystemAdapter", "AdsorbateStateConfig", "AdsorbateSystem", "CrystalStateConfig", "CrystalSystem", "canonical_cell", "PeptideSystem"]
