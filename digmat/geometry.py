"""Slab geometry shared by the slab, builder and site modules.

Conventions: a slab is periodic along the cell vectors ``a`` and ``b``; the
surface normal is ``n = a × b / |a × b|`` oriented so that ``c · n > 0``.
Along ``c`` the atoms leave an empty region (the vacuum); the slab may wrap
across the cell boundary along ``c``.  Heights are measured along ``n`` in Å.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from ase import Atoms
from ase.constraints import FixAtoms
from ase.neighborlist import neighbor_list

# Relative cutoff for coordination numbers: neighbours within 1.3 × the typical
# nearest-neighbour distance (between the 1st and 2nd shells of fcc/hcp, and
# between the 2nd and 3rd shells of bcc).
CN_CUTOFF_FACTOR = 1.3


class VacuumGap(NamedTuple):
    """Largest empty region along ``c``.

    Attributes
    ----------
    width : float
        Thickness of the empty region along the surface normal, Å.
    bottom : float
        Fractional ``c`` coordinate of the lowest slab atom (top edge of the gap).
    gap : float
        Width of the gap as a fraction of ``c``.
    spacing : float
        Distance between the lattice planes spanned by ``a`` and ``b`` (the
        height of the cell along the normal), Å.
    """

    width: float
    bottom: float
    gap: float
    spacing: float


def surface_normal(atoms: Atoms) -> np.ndarray:
    """Unit surface normal ``a × b`` oriented along ``+c``, shape ``(3,)``."""
    cell = np.asarray(atoms.cell.array, float)
    n = np.cross(cell[0], cell[1])
    norm = np.linalg.norm(n)
    if norm < 1e-8:
        raise ValueError("cell vectors a and b are zero or parallel: no surface plane")
    n /= norm
    if np.dot(cell[2], n) < 0:
        n = -n
    return n


def frac_c(atoms: Atoms) -> np.ndarray:
    """Fractional coordinate of every atom along ``c`` (not wrapped), shape ``(N,)``."""
    cell = np.asarray(atoms.cell.array, float)
    return np.linalg.solve(cell.T, atoms.positions.T).T[:, 2]


def vacuum_gap(atoms: Atoms, axis: int = 2) -> VacuumGap:
    """Find the largest empty region along cell vector ``axis`` (default ``c``), across the
    periodic boundary.

    Parameters
    ----------
    atoms : ase.Atoms
        Structure with a non-degenerate cell.
    axis : {0, 1, 2}
        Cell vector along which the gap is measured (its width is taken along the normal of
        the plane spanned by the other two).

    Returns
    -------
    VacuumGap
    """
    cell = np.asarray(atoms.cell.array, float)
    others = [k for k in range(3) if k != axis]
    area = np.linalg.norm(np.cross(cell[others[0]], cell[others[1]]))
    volume = abs(np.linalg.det(cell))
    if area < 1e-8 or volume < 1e-8:
        raise ValueError("the cell is degenerate (zero area in-plane or zero c vector)")
    spacing = volume / area
    frac = np.linalg.solve(cell.T, atoms.positions.T).T[:, axis]
    s = np.sort(np.mod(frac, 1.0))
    gaps = np.diff(np.concatenate([s, [s[0] + 1.0]]))
    k = int(np.argmax(gaps))
    bottom = s[(k + 1) % len(s)]
    return VacuumGap(float(gaps[k] * spacing), float(bottom), float(gaps[k]), float(spacing))


def slab_heights(atoms: Atoms) -> np.ndarray:
    """Height of every atom above the lowest slab atom, along the normal.

    Handles slabs that wrap across the cell boundary along ``c``.

    Parameters
    ----------
    atoms : ase.Atoms

    Returns
    -------
    numpy.ndarray
        Heights in Å, shape ``(N,)``; the lowest atom is at 0.
    """
    gap = vacuum_gap(atoms)
    origin = gap.bottom - 0.5 * gap.gap  # middle of the vacuum: never near an atom
    s = np.mod(frac_c(atoms) - origin, 1.0) - 0.5 * gap.gap
    return s * gap.spacing


def coordination_numbers(atoms: Atoms, cutoff: float) -> np.ndarray:
    """Number of neighbours within ``cutoff`` Å of each atom (periodic), shape ``(N,)``."""
    i = neighbor_list("i", atoms, cutoff)
    return np.bincount(i, minlength=len(atoms))


def nearest_neighbour_distance(atoms: Atoms) -> float:
    """Median over atoms of the distance to the nearest neighbour, Å."""
    for cutoff in (4.0, 6.0, 9.0):
        i, d = neighbor_list("id", atoms, cutoff)
        if len(d) and len(np.unique(i)) == len(atoms):
            break
    if not len(d):
        raise ValueError("atoms have no neighbours within 9 Å; cannot define coordination")
    nearest = np.full(len(atoms), np.inf)
    np.minimum.at(nearest, i, d)
    return float(np.median(nearest[np.isfinite(nearest)]))


def surface_mask(
    substrate: Atoms,
    heights: np.ndarray,
    *,
    cutoff: float | None = None,
    reference_cn: dict[str, int] | None = None,
    top_tolerance: float = 0.5,
) -> np.ndarray:
    """OC20 surface atoms of a bare substrate (no adsorbate).

    An atom is a surface atom when it lies in the upper half of the slab and
    either is under-coordinated (fewer neighbours within ``cutoff`` than the
    bulk reference for its element) or lies within ``top_tolerance`` of the
    highest atom.

    Parameters
    ----------
    substrate : ase.Atoms
        Slab atoms only.
    heights : numpy.ndarray
        Heights of ``substrate`` atoms (Å), shape ``(N,)``.
    cutoff : float, optional
        Coordination cutoff (Å); default ``1.3 ×`` the median nearest-neighbour
        distance.
    reference_cn : dict, optional
        Bulk coordination number per element.  Default: the largest
        coordination of that element among atoms of the lower half of the slab
        (the most bulk-like ones), or of all atoms if the element is absent there.
    top_tolerance : float, default 0.5
        Atoms within this distance (Å) of the topmost atom are always surface.

    Returns
    -------
    numpy.ndarray
        Boolean mask, shape ``(N,)``.
    """
    if cutoff is None:
        cutoff = CN_CUTOFF_FACTOR * nearest_neighbour_distance(substrate)
    cn = coordination_numbers(substrate, cutoff)
    symbols = np.array(substrate.get_chemical_symbols())
    top, bottom = heights.max(), heights.min()
    upper = heights > 0.5 * (top + bottom) + 1e-6
    if reference_cn is None:
        lower = ~upper
        reference_cn = {}
        for el in np.unique(symbols):
            pool = cn[(symbols == el) & lower]
            reference_cn[el] = int(pool.max()) if len(pool) else int(cn.max())
    ref = np.array([reference_cn.get(el, cn.max()) for el in symbols])
    under = cn < ref
    topmost = heights >= top - top_tolerance
    if len(substrate) == 1 or top - bottom < 1e-6:  # a single layer: all surface
        return np.ones(len(substrate), bool)
    return upper & (under | topmost)


def spglib_symmetry(cell: np.ndarray, frac: np.ndarray, numbers: np.ndarray, symprec: float):
    """spglib's symmetry operations ``{"rotations", "translations"}``, or None on failure."""
    import warnings

    import spglib

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # spglib's error-handling notice
        try:
            return spglib.get_symmetry((cell, frac, numbers), symprec=symprec)
        except Exception:  # spglib.error.SpglibError under its new error handling
            return None


def with_fixed_subsurface(atoms: Atoms) -> Atoms:
    """Copy of ``atoms`` whose FixAtoms constraint fixes exactly the tag-0 atoms."""
    out = atoms.copy()
    others = [c for c in out.constraints if not isinstance(c, FixAtoms)]
    fixed = np.flatnonzero(out.get_tags() == 0)
    out.set_constraint(others + ([FixAtoms(indices=fixed)] if len(fixed) else []))
    return out
