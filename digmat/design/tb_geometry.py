"""Geometry helpers of the tight-binding oracle: input validation and k-point meshes.

k-points are fractional coordinates of the reciprocal lattice; lengths in Å.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from ase import Atoms

MIN_DISTANCE = 0.5  # Å; closer atoms (periodic images included) are rejected
DEFAULT_KPT_DENSITY = 4.0  # k-points per Å⁻¹ of reciprocal-vector length (2π included)


def as_atoms(structure) -> Atoms:
    if isinstance(structure, Atoms):
        return structure
    try:
        from pymatgen.core import Structure
    except ImportError:  # pragma: no cover - pymatgen is a dependency
        Structure = ()
    if Structure and isinstance(structure, Structure):
        from pymatgen.io.ase import AseAtomsAdaptor

        return AseAtomsAdaptor.get_atoms(structure)
    raise TypeError(f"expected ase.Atoms or pymatgen Structure, got {type(structure).__name__}")


def kpts_from_density(atoms: Atoms, kpt_density: float = DEFAULT_KPT_DENSITY) -> tuple[int, int, int]:
    """Mesh size ``n_i = max(1, ceil(kpt_density · |b_i|))`` (``b_i`` with the 2π).

    Non-periodic directions get ``n_i = 1``.  ``kpt_density`` is in k-points
    per Å⁻¹; the mesh spacing is at most ``1/kpt_density`` Å⁻¹.
    """
    if not kpt_density > 0:
        raise ValueError(f"kpt_density must be positive, got {kpt_density}")
    atoms = as_atoms(atoms)
    if not atoms.pbc.any():
        return (1, 1, 1)
    recip = 2.0 * np.pi * np.linalg.inv(complete_cell(atoms.cell, atoms.pbc)).T
    lengths = np.linalg.norm(recip, axis=1)
    n = [max(1, math.ceil(kpt_density * b - 1e-9)) if per else 1 for b, per in zip(lengths, atoms.pbc)]
    return (n[0], n[1], n[2])


def kmesh(size: Sequence[int], *, gamma_centered: bool = True) -> np.ndarray:
    """Regular k-mesh in fractional reciprocal coordinates.

    Parameters
    ----------
    size : (n1, n2, n3)
        Points along each reciprocal vector.
    gamma_centered : bool
        ``True``: points ``i/n`` (always contains Γ).  ``False``: the
        Monkhorst–Pack points ``(2i − n + 1)/(2n)`` (as
        :func:`ase.dft.kpoints.monkhorst_pack`).

    Returns
    -------
    numpy.ndarray, shape (n1·n2·n3, 3)
    """
    size = tuple(int(s) for s in size)
    if len(size) != 3 or min(size) < 1:
        raise ValueError(f"k-mesh size must be three positive integers, got {size}")
    axes = []
    for n in size:
        i = np.arange(n, dtype=float)
        axes.append(i / n if gamma_centered else (2.0 * i - n + 1.0) / (2.0 * n))
    grid = np.meshgrid(*axes, indexing="ij")
    return np.stack([g.ravel() for g in grid], axis=1)


def complete_cell(cell: np.ndarray, pbc: np.ndarray) -> np.ndarray:
    """Full-rank copy of ``cell``: degenerate non-periodic vectors are replaced.

    For a slab or wire whose non-periodic cell vectors are zero (``ase.build.
    graphene()`` without vacuum), those rows become unit vectors orthogonal to
    the periodic ones; they carry no lattice images.  Raises ``ValueError`` if
    the periodic vectors themselves are degenerate (an empty cell).
    """
    cell = np.array(cell, dtype=float)
    pbc = np.asarray(pbc, dtype=bool)
    if not pbc.any():
        return np.eye(3) if abs(np.linalg.det(cell)) < 1e-6 else cell
    periodic = cell[pbc]
    if np.linalg.matrix_rank(periodic, tol=1e-6) < len(periodic) or np.any(
        np.linalg.norm(periodic, axis=1) < 1e-6
    ):
        raise ValueError("periodic structure has an empty (zero-volume) cell")
    if abs(np.linalg.det(cell)) > 1e-6:
        return cell
    # orthonormal complement of the periodic vectors for the non-periodic rows
    _, _, vt = np.linalg.svd(periodic)
    complement = vt[len(periodic):]
    out = cell.copy()
    out[~pbc] = complement
    return out


def validated_geometry(atoms: Atoms) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    if len(atoms) == 0:
        raise ValueError("structure has no atoms")
    symbols = set(atoms.get_chemical_symbols())
    if symbols != {"C"}:
        raise ValueError(f"the carbon tight-binding model needs carbon only, got {sorted(symbols)}")
    pos = np.array(atoms.positions, dtype=float)
    cell = np.array(atoms.cell, dtype=float)
    pbc = np.array(atoms.pbc, dtype=bool)
    if not np.isfinite(pos).all():
        raise ValueError("atomic positions contain NaN or inf")
    if not np.isfinite(cell).all():
        raise ValueError("cell contains NaN or inf")
    return pos, complete_cell(cell, pbc), pbc


def resolve_kpts(kpts, gamma_centered: bool) -> np.ndarray:
    arr = np.asarray(kpts)
    if arr.ndim == 1 and arr.shape == (3,) and np.issubdtype(arr.dtype, np.integer):
        return kmesh(arr, gamma_centered=gamma_centered)
    arr = np.atleast_2d(np.asarray(kpts, dtype=float))
    if arr.ndim != 2 or arr.shape[1] != 3 or not np.isfinite(arr).all():
        raise ValueError("kpts must be (n1, n2, n3) integers or a finite (K, 3) array")
    return arr


def inversion_reduced(size: tuple[int, int, int]) -> np.ndarray:
    """Γ-centred mesh with k and −k merged (time reversal: E(k) = E(−k))."""
    idx = np.stack(np.meshgrid(*[np.arange(n) for n in size], indexing="ij"), -1).reshape(-1, 3)
    n = np.array(size)
    partner = (-idx) % n
    lin = np.ravel_multi_index(idx.T, size)
    plin = np.ravel_multi_index(partner.T, size)
    keep = lin <= plin
    return idx[keep] / n
