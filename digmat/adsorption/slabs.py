"""Slabs in OC20 conventions: read, validate, tag and constrain.

OC20 tags
---------
* ``0`` — subsurface atom, fixed with :class:`ase.constraints.FixAtoms`;
* ``1`` — surface atom (top side, under-coordinated or topmost);
* ``2`` — adsorbate atom.

ASE's own builders (``ase.build.fcc111`` ...) number layers from the top as
``1, 2, 3 …`` and give atoms added by ``add_adsorbate`` tag ``0``; convert
them with :func:`convert_ase_tags`.  Slabs are built from bulks by
:func:`build_slab` (re-exported from :mod:`digmat.adsorption.builder`).

Every function returns a new :class:`ase.Atoms`; inputs are never modified.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

import numpy as np
from ase import Atoms
from ase.data import chemical_symbols
from ase.neighborlist import natural_cutoffs, neighbor_list

from digmat.geometry import (
    slab_heights,
    surface_mask,
    vacuum_gap,
    with_fixed_subsurface,
)

__all__ = [
    "ADSORBATE_ELEMENTS",
    "build_slab",
    "convert_ase_tags",
    "fix_subsurface",
    "infer_tags",
    "read_slab",
    "slab_heights",
    "vacuum_gap",
    "validate_slab",
]

#: Elements that :func:`infer_tags` may recognise as adsorbate atoms.
ADSORBATE_ELEMENTS = frozenset({"H", "B", "C", "N", "O", "F", "P", "S", "Cl", "Br", "I"})

#: Default minimum vacuum (Å) for :func:`validate_slab`.  Bulk cells have
#: inter-layer gaps of ~3 Å at most, even layered materials.
DEFAULT_MIN_VACUUM = 5.0


def validate_slab(
    atoms: Atoms, *, min_vacuum: float = DEFAULT_MIN_VACUUM, min_distance: float = 0.5
) -> None:
    """Check that ``atoms`` is a usable slab; raise ``ValueError`` otherwise.

    Checks: finite positions and cell; periodic along ``a`` and ``b``; an
    empty region of at least ``min_vacuum`` Å along ``c`` (detected from the
    positions, also when the slab wraps across the cell boundary); no two
    atoms closer than ``min_distance`` Å (periodic images included).

    Parameters
    ----------
    atoms : ase.Atoms
    min_vacuum : float, default 5.0
        Minimum vacuum thickness along the surface normal, Å.
    min_distance : float, default 0.5
        Minimum interatomic distance, Å.

    Raises
    ------
    ValueError
        With a message saying what is wrong and how to fix it.
    """
    if not isinstance(atoms, Atoms):
        raise ValueError(f"expected an ase.Atoms slab, got {type(atoms).__name__}")
    if len(atoms) == 0:
        raise ValueError("the structure has no atoms")
    if not np.all(np.isfinite(atoms.positions)):
        bad = np.flatnonzero(~np.all(np.isfinite(atoms.positions), axis=1))
        raise ValueError(f"non-finite (NaN/inf) positions for atoms {bad[:10].tolist()}")
    cell = np.asarray(atoms.cell.array, float)
    if not np.all(np.isfinite(cell)):
        raise ValueError("the cell contains NaN/inf")
    if not (atoms.pbc[0] and atoms.pbc[1]):
        raise ValueError(
            f"not a slab: it is not periodic in-plane (pbc={atoms.pbc.tolist()}). A slab "
            "needs periodic boundary conditions along a and b; a molecule or cluster "
            "cannot be used. If this is a slab, set atoms.pbc = (True, True, True)."
        )
    if np.linalg.norm(np.cross(cell[0], cell[1])) < 1e-6:
        raise ValueError(
            "not a slab: cell vectors a and b are zero or parallel, so there is no surface plane"
        )
    if abs(np.linalg.det(cell)) < 1e-6:
        raise ValueError(
            "the cell has no c vector (or c lies in the surface plane). Add vacuum along c, "
            "e.g. atoms.center(vacuum=10.0, axis=2)"
        )
    gap = vacuum_gap(atoms)
    if gap.width < min_vacuum:
        for axis, name, order in ((0, "a", [1, 2, 0]), (1, "b", [2, 0, 1])):
            width = vacuum_gap(atoms, axis).width
            if width >= min_vacuum:
                raise ValueError(
                    f"the vacuum ({width:.1f} Å) lies along {name}, not c: digmat needs the surface normal along c; "
                    f"reorder the cell with ase.geometry.permute_axes(atoms, {order})"
                )
        raise ValueError(
            f"not a slab: no vacuum along c — the largest empty region is {gap.width:.2f} Å "
            f"(< {min_vacuum:.1f} Å). This looks like a bulk crystal; cut a slab from it "
            "with digmat.adsorption.build_slab(bulk, miller=...)"
        )
    i, j, d = neighbor_list("ijd", atoms, min_distance)
    if len(d):
        k = int(np.argmin(d))
        raise ValueError(
            f"overlapping atoms: {atoms[i[k]].symbol}{i[k]} and {atoms[j[k]].symbol}{j[k]} "
            f"are {d[k]:.3f} Å apart (< {min_distance} Å)"
        )


def _detect_adsorbate(atoms: Atoms, heights: np.ndarray) -> np.ndarray:
    """Adsorbate mask: light non-metal atoms that are not slab constituents.

    An element counts as a slab constituent when it occurs in the lower half
    of the substrate (e.g. O in an oxide).  Atoms of the other light elements
    in the upper half are adsorbate atoms, and so is every light atom
    covalently bonded to one of them (e.g. the O of OH on an oxide).
    """
    symbols = np.array(atoms.get_chemical_symbols())
    light = np.isin(symbols, list(ADSORBATE_ELEMENTS))
    if not light.any():
        return np.zeros(len(atoms), bool)
    if light.all():
        raise ValueError(
            "the structure contains only light non-metal atoms "
            f"({sorted(set(symbols))}); infer_tags cannot tell slab from adsorbate. "
            "Pass adsorbate_indices explicitly."
        )
    h_sub = heights[~light]
    mid = 0.5 * (h_sub.min() + h_sub.max())
    constituents = set(symbols[light & (heights <= mid + 1e-6)])
    seed = light & (heights > mid) & ~np.isin(symbols, list(constituents))
    if not seed.any():
        return seed
    # Grow the seed through covalent bonds between light atoms.
    i, j = neighbor_list("ij", atoms, natural_cutoffs(atoms, mult=1.15))
    keep = light[i] & light[j]
    i, j = i[keep], j[keep]
    ads = seed.copy()
    while True:
        grown = ads.copy()
        grown[j[ads[i]]] = True
        if (grown == ads).all():
            return ads
        ads = grown


def infer_tags(
    atoms: Atoms,
    *,
    adsorbate_indices: list[int] | np.ndarray | None = None,
    fix: bool = True,
    min_vacuum: float = DEFAULT_MIN_VACUUM,
) -> Atoms:
    """Assign OC20 tags (0 subsurface, 1 surface, 2 adsorbate) from geometry.

    * adsorbate (2): ``adsorbate_indices`` if given; otherwise atoms of light
      non-metal elements (:data:`ADSORBATE_ELEMENTS`) in the upper half of the
      slab whose element does not occur in the lower half (so the O of an
      oxide stays in the slab), plus light atoms covalently bonded to them;
    * surface (1): substrate atoms in the upper half that are
      under-coordinated (fewer neighbours within 1.3 × the nearest-neighbour
      distance than the bulk-like atoms of the same element in the lower half)
      or within 0.5 Å of the topmost substrate atom;
    * subsurface (0): all other atoms.

    Parameters
    ----------
    atoms : ase.Atoms
        A slab (see :func:`validate_slab`), with or without adsorbate.
    adsorbate_indices : sequence of int, optional
        Indices of the adsorbate atoms, overriding the automatic detection.
    fix : bool, default True
        Replace any FixAtoms constraint by one fixing the tag-0 atoms.
    min_vacuum : float, default 5.0
        Minimum vacuum along ``c`` (Å); a structure without it is refused.

    Returns
    -------
    ase.Atoms
        Tagged copy.
    """
    validate_slab(atoms, min_vacuum=min_vacuum, min_distance=0.0)
    heights = slab_heights(atoms)
    if adsorbate_indices is None:
        ads = _detect_adsorbate(atoms, heights)
    else:
        idx = np.asarray(adsorbate_indices, int).reshape(-1)
        if len(idx) and (idx.min() < -len(atoms) or idx.max() >= len(atoms)):
            raise ValueError(f"adsorbate_indices out of range for {len(atoms)} atoms")
        ads = np.zeros(len(atoms), bool)
        ads[idx] = True
    if ads.all():
        raise ValueError("every atom is marked as adsorbate; there is no slab left to tag")
    sub = np.flatnonzero(~ads)
    tags = np.full(len(atoms), 2, int)
    surface = surface_mask(atoms[sub], heights[sub])
    tags[sub] = np.where(surface, 1, 0)
    out = atoms.copy()
    out.set_tags(tags)
    return with_fixed_subsurface(out) if fix else out


def convert_ase_tags(atoms: Atoms, *, fix: bool = True) -> Atoms:
    """Convert ASE layer tags to OC20 tags.

    ``ase.build`` surfaces tag layers ``1, 2, 3 …`` from the top, and
    ``add_adsorbate`` leaves added atoms at tag ``0``.  Mapping: layer 1 → 1
    (surface), layers ≥ 2 → 0 (subsurface), tag 0 → 2 (adsorbate).

    Parameters
    ----------
    atoms : ase.Atoms
        Slab built by an ``ase.build`` surface function (``fcc111``,
        ``fcc100``, ``bcc110``, ``hcp0001`` ...), possibly with adsorbates.
    fix : bool, default True
        Replace any FixAtoms constraint by one fixing the tag-0 atoms.

    Returns
    -------
    ase.Atoms
        Copy with OC20 tags.
    """
    tags = atoms.get_tags()
    if (tags < 0).any() or not (tags == 1).any():
        raise ValueError(
            "these are not ase.build layer tags (no atom has the top-layer tag 1; found "
            f"tags {sorted(set(tags.tolist()))}). Use infer_tags(atoms) instead."
        )
    out = atoms.copy()
    out.set_tags(np.where(tags == 1, 1, np.where(tags >= 2, 0, 2)))
    return with_fixed_subsurface(out) if fix else out


def fix_subsurface(atoms: Atoms) -> Atoms:
    """Copy of ``atoms`` with FixAtoms on exactly the tag-0 (subsurface) atoms.

    Existing FixAtoms constraints are replaced; other constraints are kept.
    """
    return with_fixed_subsurface(atoms)


def _has_oc20_tags(atoms: Atoms) -> bool:
    """Plausible OC20 tags: 0 and 1 present, nothing else but 2, subsurface
    below surface, adsorbate not buried (rules out e.g. a two-layer ase.build
    slab, whose tags 0/1/2 mean adsorbate/top/second layer)."""
    tags = atoms.get_tags()
    if not (set(tags.tolist()) <= {0, 1, 2} and (tags == 0).any() and (tags == 1).any()):
        return False
    h = slab_heights(atoms)
    if h[tags == 0].mean() >= h[tags == 1].mean():
        return False
    return not (tags == 2).any() or h[tags == 2].max() > h[tags == 1].mean()


def read_slab(
    path: str | os.PathLike,
    *,
    index: int | str = -1,
    format: str | None = None,
    tags: Literal["auto", "keep", "infer", "ase"] = "auto",
    min_vacuum: float = DEFAULT_MIN_VACUUM,
) -> Atoms:
    """Read a slab from any file ``ase.io`` reads, in OC20 conventions.

    Parameters
    ----------
    path : str or os.PathLike
        Structure file (POSCAR, CIF, extxyz, ASE trajectory ...).
    index : int or str, default -1
        Frame to read from multi-frame files.
    format : str, optional
        ``ase.io`` format name, when the file name does not tell.
    tags : {"auto", "keep", "infer", "ase"}, default "auto"
        ``"auto"`` keeps OC20 tags when the file has them (0 and 1 present,
        nothing outside 0/1/2) and otherwise infers them (:func:`infer_tags`);
        ``"ase"`` converts ``ase.build`` layer tags (:func:`convert_ase_tags`).
    min_vacuum : float, default 5.0
        Minimum vacuum along ``c`` (Å) for the structure to count as a slab.

    Returns
    -------
    ase.Atoms
        Tagged slab with FixAtoms on tag 0; ``info["source"]`` holds the path.

    Raises
    ------
    FileNotFoundError
        No such file.
    ValueError
        Empty or unreadable file, or the structure is not a slab.
    """
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"no such slab file: {str(p)!r}")
    if p.is_dir():
        raise ValueError(f"{str(p)!r} is a directory, not a structure file")
    if p.stat().st_size == 0:
        raise ValueError(f"slab file {str(p)!r} is empty")
    if tags not in ("auto", "keep", "infer", "ase"):
        raise ValueError(f"tags must be 'auto', 'keep', 'infer' or 'ase', got {tags!r}")
    import ase.io

    try:
        atoms = ase.io.read(p, index=index, format=format)
    except Exception as exc:  # ase.io raises many exception types
        raise ValueError(
            f"could not read {str(p)!r} as a structure with ase.io "
            f"({type(exc).__name__}: {exc}). If the extension is unusual, pass format=..."
        ) from exc
    if isinstance(atoms, list):
        if len(atoms) != 1:
            raise ValueError(f"index={index!r} selects {len(atoms)} frames; select one")
        atoms = atoms[0]
    if not isinstance(atoms, Atoms) or len(atoms) == 0:
        raise ValueError(f"{str(p)!r} contains no atoms")
    if any(s not in chemical_symbols[1:] for s in atoms.get_chemical_symbols()):
        raise ValueError(f"{str(p)!r} contains dummy atoms (atomic number 0, e.g. X)")
    validate_slab(atoms, min_vacuum=min_vacuum)
    if tags == "ase":
        atoms = convert_ase_tags(atoms)
    elif tags == "infer" or (tags == "auto" and not _has_oc20_tags(atoms)):
        atoms = infer_tags(atoms)
    elif tags == "keep" and not set(atoms.get_tags().tolist()) <= {0, 1, 2}:
        raise ValueError(
            f"tags={tags!r} but the file's tags {sorted(set(atoms.get_tags().tolist()))} "
            "are not OC20 tags (0, 1, 2)"
        )
    atoms = with_fixed_subsurface(atoms)
    atoms.info["source"] = str(p)
    return atoms


# build_slab lives in its own module (pymatgen-based); re-exported here.
from digmat.adsorption.builder import build_slab  # noqa: E402
