"""Adsorption-site classification and symmetry-equivalent sites.

:func:`classify_site` is the per-configuration geometry helper (the substrate atoms within a
distance window of a binding point, i.e. its coordination).  Site *labels* of samples and of
minima come from :class:`~digmat.adsorption.SiteAssigner`, which uses it to classify the site
points of the bare slab and assigns a configuration to the nearest one.

Site kinds
----------
The binding atoms of an adsorbate's binding point ``p`` are the substrate
atoms (periodic images included) within ``(1 + tolerance) × d_min`` of ``p``,
``d_min`` being the distance to the nearest substrate atom.  Their number
gives the kind: 1 ``ontop``, 2 ``bridge``, 3 a hollow, 4 ``4-fold``, anything
else ``other``.  A three-fold hollow is ``hollow-hcp`` when a substrate atom
of the next layer down lies under it (laterally within half the
centre-to-atom distance of the hollow's centre, and less than 1.2 nearest-
neighbour distances below the hollow's atoms, along the normal of their plane),
``hollow-fcc`` otherwise — on fcc(111) and hcp(0001) exactly the usual fcc/hcp
sites, on the tilted (111) terraces of fcc(211) too.  A binding point
farther than ``1.5 × (r_cov(X) + r_cov(M))`` from every substrate atom is
not bound: kind ``other``, no binding atoms.

Symmetry
--------
:class:`SlabSymmetry` holds the space-group operations of the bare substrate
(spglib) that keep the surface normal (map the top side onto itself),
including the translations of a tiled cell.  Each operation permutes the
substrate atoms, so a site — a set of (atom, lattice image) pairs — maps to
another site exactly; :func:`equivalent_site_key` returns the
lexicographically smallest image over all operations and lattice
translations, a hashable key equal for equivalent sites.

Slab geometry follows :mod:`digmat.adsorption.slabs`: periodic along ``a``,
``b`` (and ``c`` if ``pbc[2]``), normal ``a × b``; atoms and binding points
may lie in any periodic image.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from ase import Atoms
from ase.data import atomic_numbers, covalent_radii

from digmat.geometry import spglib_symmetry, surface_normal

__all__ = [
    "SITE_KINDS",
    "SiteInfo",
    "SlabSymmetry",
    "classify_site",
    "equivalent_site_key",
    "group_equivalent_sites",
]

SITE_KINDS = ("ontop", "bridge", "hollow-fcc", "hollow-hcp", "4-fold", "other")
_KIND_BY_COUNT = {1: "ontop", 2: "bridge", 4: "4-fold"}


@dataclass(frozen=True)
class SiteInfo:
    """Result of :func:`classify_site`.

    Attributes
    ----------
    kind : str
        One of :data:`SITE_KINDS`.
    binding_atoms : tuple of int
        Indices (into the classified ``atoms``) of the substrate atoms bound.
    image_shifts : tuple of tuple of int
        For each binding atom, the lattice translation ``(n_a, n_b, n_c)`` of
        the bound image relative to its stored position.
    distances : tuple of float
        Distance from the binding point to each binding atom, Å.
    binding_symbols : tuple of str
        Chemical symbols of the binding atoms.
    position : tuple of float
        Binding point, Cartesian, Å (as given).
    inplane : tuple of float
        Fractional ``(a, b)`` coordinates of the binding point, in ``[0, 1)``.
    height : float
        Height of the binding point above the mean plane of its binding atoms
        (above the nearest substrate atom if not bound), Å.
    bound : bool
        False when the binding point is too far from the surface to bind.
    """

    kind: str
    binding_atoms: tuple[int, ...]
    image_shifts: tuple[tuple[int, int, int], ...]
    distances: tuple[float, ...]
    binding_symbols: tuple[str, ...]
    position: tuple[float, float, float]
    inplane: tuple[float, float]
    height: float
    bound: bool


def _substrate_indices(atoms: Atoms, exclude: Sequence[int]) -> np.ndarray:
    mask = atoms.get_tags() != 2
    mask[np.asarray(list(exclude), int)] = False
    idx = np.flatnonzero(mask)
    if not len(idx):
        raise ValueError("no substrate atoms: every atom is tagged 2 (adsorbate) or excluded")
    return idx


def _wrap_offsets(atoms: Atoms, points: np.ndarray) -> np.ndarray:
    """Integer lattice offsets that bring ``points`` into the cell along periodic axes."""
    frac = np.linalg.solve(atoms.cell.array.T, np.atleast_2d(points).T).T
    return np.floor(frac + 1e-9).astype(int) * atoms.pbc.astype(int)


def classify_site(
    atoms: Atoms,
    binding: int | Sequence[float] | np.ndarray,
    *,
    adsorbate_indices: Sequence[int] = (),
    tolerance: float = 0.15,
    max_bond: float | None = None,
) -> SiteInfo:
    """Classify the adsorption site of a binding atom or point.

    Parameters
    ----------
    atoms : ase.Atoms
        Slab, optionally with adsorbate atoms, which are recognised by tag 2
        (OC20 tags: call :func:`~digmat.adsorption.slabs.infer_tags` or
        :func:`~digmat.adsorption.slabs.convert_ase_tags` first) or listed in
        ``adsorbate_indices``.  All other atoms are substrate.
    binding : int or array_like of shape (3,)
        Index of the binding atom in ``atoms`` (it is never counted as
        substrate), or a Cartesian binding point in Å.
    adsorbate_indices : sequence of int, optional
        Extra atoms to ignore (adsorbate atoms without tag 2).
    tolerance : float, default 0.15
        Relative distance window defining the binding atoms.
    max_bond : float, optional
        Largest binding distance, Å.  Default ``1.5 × (r_cov(X) + r_cov(M))``
        with ``M`` the nearest substrate atom and ``X`` the binding atom (O
        for a bare point).

    Returns
    -------
    SiteInfo
    """
    if not isinstance(atoms, Atoms) or len(atoms) == 0:
        raise ValueError("atoms must be a non-empty ase.Atoms slab")
    if not (atoms.pbc[0] and atoms.pbc[1]):
        raise ValueError(f"atoms must be periodic in-plane (pbc={atoms.pbc.tolist()})")
    if abs(np.linalg.det(atoms.cell.array)) < 1e-9:
        raise ValueError("the cell is degenerate; give the slab a c vector (vacuum)")
    if not 0 < tolerance < 1:
        raise ValueError(f"tolerance must be in (0, 1), got {tolerance}")
    exclude = list(adsorbate_indices)
    if isinstance(binding, (int, np.integer)):
        if not -len(atoms) <= binding < len(atoms):
            raise ValueError(f"binding index {binding} out of range for {len(atoms)} atoms")
        binding = int(binding) % len(atoms)
        point = atoms.positions[binding].copy()
        x_radius = covalent_radii[atoms.numbers[binding]]
        exclude.append(binding)
    else:
        point = np.asarray(binding, float).reshape(-1)
        if point.shape != (3,) or not np.all(np.isfinite(point)):
            raise ValueError(f"binding must be an atom index or a finite 3-vector, got {binding!r}")
        x_radius = covalent_radii[atomic_numbers["O"]]
    sub = _substrate_indices(atoms, exclude)
    cell = atoms.cell.array
    normal = surface_normal(atoms)

    p_off = _wrap_offsets(atoms, point)[0]
    p0 = point - p_off @ cell
    x_off = _wrap_offsets(atoms, atoms.positions[sub])
    x0 = atoms.positions[sub] - x_off @ cell

    area = np.linalg.norm(np.cross(cell[0], cell[1]))
    radius = 6.0
    reach = [
        math.ceil(radius / (area / np.linalg.norm(cell[1]))) + 1,
        math.ceil(radius / (area / np.linalg.norm(cell[0]))) + 1,
        1,
    ]
    ranges = [range(-r, r + 1) if atoms.pbc[k] else range(1) for k, r in enumerate(reach)]
    shifts = np.array(list(itertools.product(*ranges)), int)  # (S, 3)
    vec = x0[None, :, :] + (shifts @ cell)[:, None, :] - p0  # (S, N, 3)
    dist = np.linalg.norm(vec, axis=2)
    d_min = float(dist.min())
    s_idx, n_idx = np.nonzero(dist <= d_min * (1.0 + tolerance) + 1e-9)
    # binding atoms are surface atoms (tag 1) when the window holds any: a subsurface atom
    # (tag 0) in the window is the next layer seen through a hollow (H low in the 4-fold
    # hollow of fcc(100) is 2.0 Å from its four neighbours and 2.2 Å from the atom below)
    tags = atoms.get_tags()[sub[n_idx]]
    if (tags == 1).any() and (tags == 0).any():
        s_idx, n_idx = s_idx[tags != 0], n_idx[tags != 0]
    order = np.lexsort((s_idx, dist[s_idx, n_idx]))
    s_idx, n_idx = s_idx[order], n_idx[order]

    nearest = sub[n_idx[0]]
    bond_limit = max_bond if max_bond is not None else 1.5 * (
        x_radius + covalent_radii[atoms.numbers[nearest]]
    )
    frac = np.linalg.solve(cell.T, p0)
    inplane = (float(frac[0] % 1.0) % 1.0, float(frac[1] % 1.0) % 1.0)
    if d_min > bond_limit:
        height = float(-(vec[s_idx[0], n_idx[0]] @ normal))
        return SiteInfo("other", (), (), (), (), tuple(map(float, point)), inplane, height, False)

    bvec = vec[s_idx, n_idx]
    z_bind = bvec @ normal
    kind = _KIND_BY_COUNT.get(len(n_idx), "other")
    if len(n_idx) == 3:
        kind = _hollow_kind(bvec, vec.reshape(-1, 3), normal)
    image = shifts[s_idx] - x_off[n_idx] + p_off  # relative to stored positions
    symbols = atoms.get_chemical_symbols()
    return SiteInfo(
        kind=kind,
        binding_atoms=tuple(int(sub[n]) for n in n_idx),
        image_shifts=tuple(tuple(int(x) for x in row) for row in image),
        distances=tuple(float(d) for d in dist[s_idx, n_idx]),
        binding_symbols=tuple(symbols[sub[n]] for n in n_idx),
        position=tuple(float(x) for x in point),
        inplane=inplane,
        height=float(-z_bind.mean()),
        bound=True,
    )


def _hollow_kind(bvec: np.ndarray, allvec: np.ndarray, normal: np.ndarray) -> str:
    """``hollow-hcp`` if a next-layer atom sits under the three-fold hollow.

    "Under" is along the normal of the plane of the hollow's three atoms (turned to the
    slab normal's side): on a stepped surface the terrace is tilted against the slab normal
    (19.5° on fcc(211)), and looking down the slab normal would miss the atom below an hcp
    hollow by ``depth × tan(tilt)`` ≈ 0.8 Å.  On a flat surface the two normals coincide.
    """
    local = np.cross(bvec[1] - bvec[0], bvec[2] - bvec[0])
    if np.linalg.norm(local) > 1e-6:
        local = local / np.linalg.norm(local)
        normal = local if local @ normal >= 0 else -local
    lateral = bvec - np.outer(bvec @ normal, normal)
    centre = lateral.mean(axis=0)
    r_centre = np.linalg.norm(lateral - centre, axis=1).mean()
    d_nn = np.mean([np.linalg.norm(bvec[i] - bvec[j]) for i, j in ((0, 1), (0, 2), (1, 2))])
    z_plane = (bvec @ normal).mean()
    z = allvec @ normal
    below = (z < z_plane - 0.5) & (z > z_plane - 1.2 * d_nn)
    lat = allvec[below] - np.outer(z[below], normal)
    if len(lat) and np.linalg.norm(lat - centre, axis=1).min() < 0.5 * r_centre:
        return "hollow-hcp"
    return "hollow-fcc"


class SlabSymmetry:
    """Symmetry operations of a slab's substrate that keep the surface normal.

    Parameters
    ----------
    slab : ase.Atoms
        Slab (adsorbate atoms, tag 2, are ignored).  Use the bare, unrelaxed
        slab when possible: relaxation around an adsorbate breaks symmetry.
    symprec : float, default 0.05
        spglib tolerance, Å.

    Attributes
    ----------
    rotations : numpy.ndarray
        Integer rotation matrices in fractional coordinates, ``(n_ops, 3, 3)``.
    translations : numpy.ndarray
        Fractional translations, ``(n_ops, 3)``.
    substrate : numpy.ndarray
        Indices of the substrate atoms in ``slab``.
    """

    def __init__(self, slab: Atoms, *, symprec: float = 0.05):
        self.substrate = _substrate_indices(slab, ())
        self.n_atoms = len(slab)
        cell = slab.cell.array
        frac = np.linalg.solve(cell.T, slab.positions[self.substrate].T).T
        numbers = slab.numbers[self.substrate]
        data = spglib_symmetry(cell, frac, numbers, symprec)
        if data is None:  # spglib failed: identity only
            data = {"rotations": np.eye(3, dtype=int)[None], "translations": np.zeros((1, 3))}
        keep = [k for k, r in enumerate(data["rotations"]) if np.array_equal(r[2], [0, 0, 1])]
        rotations = np.asarray(data["rotations"])[keep]
        translations = np.asarray(data["translations"])[keep]
        tol = max(2.0 * symprec, 1e-4)
        perms, offsets, kept = [], [], []
        glob = {int(g): k for k, g in enumerate(self.substrate)}
        for k, (rot, trans) in enumerate(zip(rotations, translations, strict=True)):
            image = frac @ rot.T + trans  # (N, 3)
            delta = image[:, None, :] - frac[None, :, :]  # (N, N, 3)
            lattice = np.round(delta)
            err = np.linalg.norm((delta - lattice) @ cell, axis=2)
            err[numbers[:, None] != numbers[None, :]] = np.inf
            target = err.argmin(axis=1)
            if not np.all(err[np.arange(len(frac)), target] < tol):
                continue  # spglib and our tolerance disagree: skip this operation
            perms.append(self.substrate[target])
            offsets.append(lattice[np.arange(len(frac)), target].astype(int))
            kept.append(k)
        self.rotations = rotations[kept]
        self.translations = translations[kept]
        self._glob = glob
        self._perms = perms
        self._offsets = offsets

    def __len__(self) -> int:
        return len(self._perms)

    def canonical(self, atoms: Sequence[int], shifts: Sequence[Sequence[int]]) -> tuple:
        """Smallest image of a set of (atom, lattice image) pairs under the operations.

        Parameters
        ----------
        atoms : sequence of int
            Substrate atom indices of the slab.
        shifts : sequence of (int, int, int)
            Lattice image of each atom.

        Returns
        -------
        tuple
            Hashable canonical form, invariant under the slab's symmetry and
            lattice translations.
        """
        if not len(atoms):
            return ()
        try:
            local = [self._glob[int(a)] for a in atoms]
        except KeyError as exc:
            raise ValueError(f"atom {exc.args[0]} is not a substrate atom of this slab") from None
        shifts = np.asarray(shifts, int).reshape(len(local), 3)
        best = None
        for perm, off, rot in zip(self._perms, self._offsets, self.rotations, strict=True):
            new_atoms = perm[local]
            new_shifts = shifts @ rot.T + off[local]
            form = _translation_normal_form(new_atoms, new_shifts)
            if best is None or form < best:
                best = form
        return best


def _translation_normal_form(atoms: np.ndarray, shifts: np.ndarray) -> tuple:
    forms = []
    for ref in range(len(atoms)):
        rel = shifts - shifts[ref]
        forms.append(tuple(sorted((int(a), *map(int, s)) for a, s in zip(atoms, rel, strict=True))))
    return min(forms)


def equivalent_site_key(
    slab: Atoms, site: SiteInfo, *, symmetry: SlabSymmetry | None = None, symprec: float = 0.05
) -> tuple:
    """Hashable key, equal for sites equivalent under the slab's symmetry.

    Parameters
    ----------
    slab : ase.Atoms
        The slab the site was classified on (same substrate atom indices).
    site : SiteInfo
        From :func:`classify_site`.
    symmetry : SlabSymmetry, optional
        Precomputed symmetry of ``slab`` (recommended for many sites).
    symprec : float, default 0.05
        spglib tolerance when ``symmetry`` is not given, Å.

    Returns
    -------
    tuple
        ``(kind, canonical binding-atom set)``; unbound sites all map to
        ``("other", ())``.
    """
    if symmetry is None:
        symmetry = SlabSymmetry(slab, symprec=symprec)
    elif symmetry.n_atoms != len(slab):
        raise ValueError("symmetry was computed for a different slab")
    return (site.kind, symmetry.canonical(site.binding_atoms, site.image_shifts))


def group_equivalent_sites(
    slab: Atoms, sites: Sequence[SiteInfo], *, symprec: float = 0.05
) -> np.ndarray:
    """Label sites so that symmetry-equivalent ones share a label.

    Parameters
    ----------
    slab : ase.Atoms
    sites : sequence of SiteInfo
    symprec : float, default 0.05
        spglib tolerance, Å.

    Returns
    -------
    numpy.ndarray
        Integer labels, shape ``(len(sites),)``, numbered in order of first
        appearance.
    """
    symmetry = SlabSymmetry(slab, symprec=symprec)
    labels: dict[tuple, int] = {}
    out = np.empty(len(sites), int)
    for k, site in enumerate(sites):
        key = equivalent_site_key(slab, site, symmetry=symmetry)
        out[k] = labels.setdefault(key, len(labels))
    return out
