"""Assign adsorbate configurations to the symmetry-distinct sites of a slab.

Every ontop/bridge/hollow point of the surface cell (pymatgen's site finder, no symmetry
reduction) is classified once; a configuration goes to the site point nearest to its binding
atom in-plane (modulo lattice translations): a Voronoi assignment that does not flip a
thermally displaced hollow configuration into "ontop" the way a distance window would.
Points equivalent under the slab's symmetry share one key, so configurations anywhere in the
cell that sit on equivalent sites get the same key.  Samples of a model and the minima their
relaxation reaches (``digmat adsorb --refine``) are labelled by this one rule.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from ase import Atoms

from digmat.adsorption.placement import surface_sites
from digmat.adsorption.sites import SiteInfo, SlabSymmetry, classify_site, equivalent_site_key

__all__ = ["SiteAssignment", "SiteAssigner"]

UNBOUND = ("other", ())
"""Key of a configuration whose binding atom has no substrate neighbour (desorbed)."""


@dataclass(frozen=True)
class SiteAssignment:
    """Where one configuration sits.

    Attributes
    ----------
    key : tuple
        Symmetry-invariant site key; ``kind`` is ``key[0]``.
    binding_symbols : list of str
        Sorted symbols of the site point's surface atoms (empty when unbound).
    info : SiteInfo
        The configuration's own site classification (height, in-plane position).
    """

    key: tuple
    binding_symbols: list[str]
    info: SiteInfo

    @property
    def kind(self) -> str:
        return self.key[0]


class SiteAssigner:
    """Site keys of configurations on one slab.

    Parameters
    ----------
    slab : ase.Atoms
        The bare slab (OC20 tags) whose symmetry defines equivalent sites.
    """

    def __init__(self, slab: Atoms):
        symmetry = SlabSymmetry(slab)
        cell = slab.cell.array
        normal = np.cross(cell[0], cell[1])
        self.normal = normal / np.linalg.norm(normal)
        self.cell = cell
        points = np.array([p for _, p in surface_sites(slab, symm_reduce=0.0, near_reduce=0.01)])
        infos = [classify_site(slab, p + 1.5 * self.normal) for p in points]
        self.point_keys = [equivalent_site_key(slab, info, symmetry=symmetry) for info in infos]
        self.point_symbols = [sorted(info.binding_symbols) for info in infos]
        self._inplane = np.linalg.inv(np.stack([cell[0], cell[1], self.normal]))
        self._point_frac = (points @ self._inplane)[:, :2]

    def assign(self, atoms: Atoms, binding_index: int) -> SiteAssignment:
        """The site of ``atoms`` (slab + adsorbate, adsorbate tagged 2) by its binding atom.

        Parameters
        ----------
        atoms : ase.Atoms
            A configuration on this slab.
        binding_index : int
            Index of the adsorbate's binding atom in ``atoms``.

        Returns
        -------
        SiteAssignment
        """
        ads = np.flatnonzero(atoms.get_tags() == 2)
        info = classify_site(atoms, binding_index, adsorbate_indices=ads)
        if not info.bound:
            return SiteAssignment(UNBOUND, [], info)
        frac = (atoms.positions[binding_index] @ self._inplane)[:2]
        d = frac[None] - self._point_frac
        d -= np.round(d)
        nearest = int(np.argmin(np.linalg.norm(d @ self.cell[:2], axis=1)))
        return SiteAssignment(self.point_keys[nearest], self.point_symbols[nearest], info)
