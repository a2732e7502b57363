"""Assign adsorbate configurations to the symmetry-distinct sites of a slab.

This is digmat's one site-labelling rule: the minima of the reference search
(:func:`~digmat.adsorption.reference_search`, hence ``digmat reference`` and the corpus), the
minima that ``digmat adsorb --refine`` reaches and a model's samples (``digmat adsorb``) are all
labelled by :class:`SiteAssigner`.

Every ontop/bridge/hollow point of the surface cell (pymatgen's site finder on the surface atoms,
no symmetry reduction) is classified once, at the point itself: pymatgen builds each point as the
centroid of the surface atoms that define it — one atom, the two ends of an edge, the three
corners of a triangle; the diagonal of a square (fcc(100), the (100) step facet of fcc(211)) is
its 4-fold centre — so :func:`~digmat.adsorption.classify_site`'s distance window at the point
finds exactly those atoms.  A configuration goes to the site point nearest to its binding atom
in 3-D, each point being the centroid of its atoms as they sit in the configuration (they follow
the surface's relaxation), modulo lattice translations.  This Voronoi assignment does not flip a
thermally displaced or asymmetrically relaxed hollow configuration into "ontop" the way a
distance window does, and on a stepped surface it measures distances within the tilted terrace:
the site points of a terrace lie in its plane, so the nearest one in 3-D is the nearest one seen
down the terrace's own normal (seen down the slab normal, an atom 1.3 Å above a terrace tilted
by 19.5° appears 0.45 Å downhill — more than half the 0.8 Å from a bridge to a hollow).  The
kind therefore says which site's region the binding atom occupies, not how many substrate atoms
it bonds to: a CH3 bonded to one Pd but 0.9 Å off the atom, nearer the bridge, is ``bridge``.
Points equivalent under the slab's symmetry share one key, so configurations anywhere in the
cell that sit on equivalent sites get the same key.
"""

from __future__ import annotations

from dataclasses import dataclass, field

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
        The configuration's own site classification (height, in-plane position, the
        substrate atoms within the distance window of its binding atom).
    binding_atoms : list of int
        Indices of the site point's surface atoms in the slab (the same indices in a
        configuration: the slab's atoms come first), empty when unbound.
    distance : float
        3-D distance from the binding atom to the site point, Å (nearest lattice image;
        ``nan`` when unbound).
    """

    key: tuple
    binding_symbols: list[str]
    info: SiteInfo
    binding_atoms: list[int] = field(default_factory=list)
    distance: float = float("nan")

    @property
    def kind(self) -> str:
        return self.key[0]


class SiteAssigner:
    """Site keys of configurations on one slab.

    Parameters
    ----------
    slab : ase.Atoms
        The bare slab (OC20 tags) whose symmetry defines equivalent sites.

    Attributes
    ----------
    points : numpy.ndarray
        Site points, Cartesian, Å, shape ``(n, 3)``.
    point_keys : list of tuple
        Symmetry-invariant key of each point (``key[0]`` is its kind).
    point_infos : list of SiteInfo
        :func:`~digmat.adsorption.classify_site` at each point.
    """

    def __init__(self, slab: Atoms):
        symmetry = SlabSymmetry(slab)
        cell = slab.cell.array
        normal = np.cross(cell[0], cell[1])
        self.normal = normal / np.linalg.norm(normal)
        self.cell = cell
        self.n_slab = len(slab)
        self._numbers = slab.numbers.copy()
        self._positions = slab.positions.copy()
        self.points = np.array([p for _, p in surface_sites(slab, symm_reduce=0.0, near_reduce=0.01)])
        self.point_infos = [classify_site(slab, p) for p in self.points]
        self.point_keys = [equivalent_site_key(slab, info, symmetry=symmetry) for info in self.point_infos]
        self.point_symbols = [sorted(info.binding_symbols) for info in self.point_infos]
        # row k averages the displacements of point k's atoms: the point moves with them
        self._members = np.zeros((len(self.points), len(slab)))
        for k, info in enumerate(self.point_infos):
            np.add.at(self._members[k], list(info.binding_atoms), 1.0 / len(info.binding_atoms))  # an atom may recur (own image)
        self._periodic = np.array([True, True, bool(slab.pbc[2])])
        self._to_frac = np.linalg.inv(cell)

    def _min_image(self, vectors: np.ndarray) -> np.ndarray:
        frac = np.atleast_2d(vectors) @ self._to_frac
        frac[:, self._periodic] -= np.round(frac[:, self._periodic])
        return frac @ self.cell

    def site_points(self, atoms: Atoms | None = None) -> np.ndarray:
        """Site points, Cartesian, Å, shape ``(n, 3)``: each the centroid of its surface atoms,
        on the bare slab or, given a configuration (the slab's atoms first, in order), as those
        atoms sit in it."""
        if atoms is None:
            return self.points.copy()
        if len(atoms) < self.n_slab or not np.array_equal(atoms.numbers[: self.n_slab], self._numbers):
            raise ValueError(f"the configuration does not start with this slab's {self.n_slab} atoms in order")
        moved = self._min_image(atoms.positions[: self.n_slab] - self._positions)
        return self.points + self._members @ moved

    def nearest_point(self, position, atoms: Atoms | None = None) -> tuple[int, float]:
        """Index of the site point nearest to ``position`` (Cartesian, Å) in 3-D, and its distance, Å.

        Parameters
        ----------
        position : array_like, shape (3,)
        atoms : ase.Atoms, optional
            A configuration on this slab: its surface atoms place the points (:meth:`site_points`).

        Distances are taken over the lattice images of the points (in-plane, and along ``c``
        when the slab is periodic along it).
        """
        points = self.site_points(atoms)
        dist = np.linalg.norm(self._min_image(np.asarray(position, float).reshape(1, 3) - points), axis=1)
        k = int(np.argmin(dist))
        return k, float(dist[k])

    def assign(self, atoms: Atoms, binding_index: int) -> SiteAssignment:
        """The site of ``atoms`` (slab + adsorbate, adsorbate tagged 2) by its binding atom.

        Parameters
        ----------
        atoms : ase.Atoms
            A configuration on this slab: the slab's atoms in the slab's order, then the
            adsorbate's.
        binding_index : int
            Index of the adsorbate's binding atom in ``atoms``.

        Returns
        -------
        SiteAssignment
            The key of the site point nearest to the binding atom in 3-D, or ``("other", ())``
            when the binding atom is too far from every substrate atom to be bound.
        """
        ads = np.flatnonzero(atoms.get_tags() == 2)
        info = classify_site(atoms, binding_index, adsorbate_indices=ads)
        if not info.bound:
            return SiteAssignment(UNBOUND, [], info)
        k, dist = self.nearest_point(atoms.positions[binding_index], atoms)
        return SiteAssignment(self.point_keys[k], list(self.point_symbols[k]), info,
                              list(self.point_infos[k].binding_atoms), dist)
