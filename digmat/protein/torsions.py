"""Dihedral angles of peptides: backbone φ/ψ from PDB names, vectorised over frames.

Conventions (IUPAC–IUB): φ_i = C(i−1)–N(i)–CA(i)–C(i), ψ_i = N(i)–CA(i)–C(i)–N(i+1), angles
in (−180°, 180°].  The caps ACE and NME supply C(0) and N(n+1), so every residue of a capped
peptide has both angles.  Only numpy and the Atoms' PDB arrays are needed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from ase import Atoms

from digmat.protein.forcefield import topology_key

__all__ = [
    "Dihedral",
    "backbone_dihedrals",
    "bond_graph",
    "dihedral_angles",
    "moving_side",
    "phi_psi",
    "set_dihedrals",
]


@dataclass(frozen=True)
class Dihedral:
    """One named dihedral of a peptide.

    Attributes
    ----------
    name : str
        ``"phi"`` or ``"psi"``.
    residue : int
        Residue number of the residue it belongs to.
    indices : tuple of int
        The four atom indices.
    """

    name: str
    residue: int
    indices: tuple[int, int, int, int]


def dihedral_angles(positions: np.ndarray, quads: np.ndarray) -> np.ndarray:
    """Dihedral angles in radians, (−π, π].

    Parameters
    ----------
    positions : ndarray, shape (..., N, 3)
        Positions (any length unit), any number of leading frame dimensions.
    quads : ndarray of int, shape (M, 4)
        Atom indices of each dihedral.

    Returns
    -------
    ndarray, shape (..., M)
    """
    positions = np.asarray(positions, dtype=float)
    quads = np.asarray(quads, dtype=int).reshape(-1, 4)
    p0, p1, p2, p3 = (positions[..., quads[:, k], :] for k in range(4))
    b0, b1, b2 = p0 - p1, p2 - p1, p3 - p2
    b1n = b1 / np.linalg.norm(b1, axis=-1, keepdims=True)
    v = b0 - np.sum(b0 * b1n, axis=-1, keepdims=True) * b1n
    w = b2 - np.sum(b2 * b1n, axis=-1, keepdims=True) * b1n
    x = np.sum(v * w, axis=-1)
    y = np.sum(np.cross(b1n, v) * w, axis=-1)
    return np.arctan2(y, x)


def backbone_dihedrals(atoms: Atoms) -> list[Dihedral]:
    """The φ and ψ dihedrals of every amino-acid residue (caps excluded), in residue order.

    Raises
    ------
    ValueError
        If a residue lacks a backbone atom its φ or ψ needs (e.g. an uncapped terminus
        has no φ or ψ: those angles are skipped, not an error; a residue with no CA is).
    """
    names, resnames, resnums, _ = topology_key(atoms)
    index = {(num, name): i for i, (name, num) in enumerate(zip(names, resnums))}
    order = list(dict.fromkeys(resnums))
    kinds = {num: res for num, res in zip(resnums, resnames)}
    out = []
    for k, num in enumerate(order):
        if kinds[num] in ("ACE", "NME", "NH2"):
            continue
        try:
            n, ca, c = index[(num, "N")], index[(num, "CA")], index[(num, "C")]
        except KeyError:
            raise ValueError(f"residue {kinds[num]} {num} lacks a backbone atom (N, CA or C)") from None
        prev_c = index.get((order[k - 1], "C")) if k > 0 else None
        next_n = index.get((order[k + 1], "N")) if k + 1 < len(order) else None
        if prev_c is not None:
            out.append(Dihedral("phi", num, (prev_c, n, ca, c)))
        if next_n is not None:
            out.append(Dihedral("psi", num, (n, ca, c, next_n)))
    return out


def phi_psi(atoms: Atoms, positions: np.ndarray | None = None) -> np.ndarray:
    """Backbone (φ, ψ) of every residue that has both, in degrees.

    Parameters
    ----------
    atoms : ase.Atoms
        Named peptide (its positions are used unless ``positions`` is given).
    positions : ndarray, shape (..., N, 3), optional
        Frames of the same peptide, Å.

    Returns
    -------
    ndarray, shape (..., n_residues, 2)
        (φ, ψ) in degrees, (−180, 180].
    """
    dihedrals = backbone_dihedrals(atoms)
    phis = {d.residue: d.indices for d in dihedrals if d.name == "phi"}
    psis = {d.residue: d.indices for d in dihedrals if d.name == "psi"}
    residues = [r for r in phis if r in psis]
    if not residues:
        raise ValueError("no residue has both φ and ψ (cap the peptide with ACE/NME)")
    quads = np.array([q for r in residues for q in (phis[r], psis[r])])
    pos = atoms.positions if positions is None else positions
    angles = np.degrees(dihedral_angles(pos, quads))
    return angles.reshape(*angles.shape[:-1], len(residues), 2)


def bond_graph(atoms: Atoms) -> list[list[int]]:
    """Neighbour lists of the peptide's covalent bonds (from the force field's residue templates)."""
    from digmat.protein.forcefield import peptide_topology

    neighbours: list[list[int]] = [[] for _ in range(len(atoms))]
    for bond in peptide_topology(atoms).bonds():
        i, j = bond[0].index, bond[1].index
        neighbours[i].append(j)
        neighbours[j].append(i)
    return neighbours


def moving_side(neighbours: list[list[int]], j: int, k: int) -> np.ndarray:
    """Indices of the atoms on ``k``'s side of bond j–k (``k`` included).

    Raises
    ------
    ValueError
        If j–k is in a ring (no side can turn alone).
    """
    seen, stack = {k}, [k]
    while stack:
        a = stack.pop()
        for b in neighbours[a]:
            if a == k and b == j:
                continue
            if b == j:
                raise ValueError(f"bond {j}-{k} is in a ring: its dihedral cannot be set alone")
            if b not in seen:
                seen.add(b)
                stack.append(b)
    return np.array(sorted(seen))


def set_dihedrals(atoms: Atoms, dihedrals: list[Dihedral], angles_deg) -> Atoms:
    """A copy of ``atoms`` with the given dihedrals set (rigid rotations; bonds and angles kept).

    Each dihedral (i, j, k, l) is set by rotating the atoms on ``k``'s side of the j–k bond
    about that bond, so bond lengths and bond angles are exactly those of ``atoms``.

    Parameters
    ----------
    atoms : ase.Atoms
        Named peptide (not modified).
    dihedrals : list of Dihedral
        e.g. from :func:`backbone_dihedrals`.
    angles_deg : array-like, shape (len(dihedrals),)
        Target angles in degrees.

    Returns
    -------
    ase.Atoms
    """
    out = atoms.copy()
    neighbours = bond_graph(atoms)
    pos = out.positions
    for d, target in zip(dihedrals, np.asarray(angles_deg, dtype=float).ravel()):
        i, j, k, l = d.indices
        side = moving_side(neighbours, j, k)
        current = np.degrees(dihedral_angles(pos, np.array([d.indices]))[0])
        delta = np.radians(target - current)
        axis = pos[k] - pos[j]
        axis /= np.linalg.norm(axis)
        rel = pos[side] - pos[k]
        cos, sin = np.cos(delta), np.sin(delta)
        rotated = rel * cos + np.cross(axis, rel) * sin + np.outer(rel @ axis, axis) * (1 - cos)
        pos[side] = rotated + pos[k]
    out.positions = pos
    return out
