"""Adapters between ``ase.Atoms`` and diffusion states (the only place that knows how).

- :class:`AdsorbateSystem` — an adsorbate on a slab: anchor atom's in-plane position on the
  surface torus, its height and the internal geometry in Euclidean coordinates.
"""

from .adsorbate import AdsorbateStateConfig, AdsorbateSystem

__all__ = ["AdsorbateStateConfig", "AdsorbateSystem"]
