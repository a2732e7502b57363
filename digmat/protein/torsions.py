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
from digmat.torsions import dihedral_angles, moving_side

__all__ = [
    "Dihedral",
    "backbone_dihedrals",
    "bond_graph",
    "dihedral_angles",
    "moving_side",
    "nonlocal_pairs",
    "phi_psi",
    "set_dihedrals",
    "state_torsions",
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


def nonlocal_pairs(neighbours: list[list[int]], min_bonds: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """Atom pairs ``(i, j)``, i < j, at least ``min_bonds`` covalent bonds apart (or unconnected).

    These are the pairs a steric clash is judged on: closer ones are held by bonds and angles.

    Parameters
    ----------
    neighbours : list of list of int
        Bond graph (:func:`bond_graph`).
    min_bonds : int

    Returns
    -------
    (ndarray, ndarray) of int
    """
    n = len(neighbours)
    hops = np.full((n, n), n + 1, dtype=int)
    for start in range(n):
        hops[start, start] = 0
        frontier = [start]
        for depth in range(1, min_bonds):
            frontier = [b for a in frontier for b in neighbours[a] if hops[start, b] > depth]
            for b in frontier:
                hops[start, b] = depth
    i, j = np.nonzero(np.triu(hops >= min_bonds, 1))
    return i, j


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


CHI_PRIORITY = {"O": 0, "N": 1, "S": 2}
"""The fourth atom of a χ: heteroatoms first (O, N, S), then by name (Thr OG1, Asn OD1, His ND1)."""

BACKBONE = frozenset({"N", "CA", "C", "O", "H", "HA", "HA2", "HA3", "OXT"})


def state_torsions(atoms: Atoms) -> list[Dihedral]:
    """Every torsion a peptide's conformation is made of: backbone φ, ψ and side-chain χ.

    A χ is defined for every side-chain bond j–k between heavy atoms that is not in a ring
    and has a heavy atom beyond it on both sides (so methyl, hydroxyl, thiol and amine
    rotors, whose turning moves only hydrogens, are not included); χ1 is N–CA–CB–XG,
    further χ follow the side chain outwards; the fourth atom is the heavy neighbour
    first by (O, N, S, C) then by name, which gives the IUPAC choices (Thr χ1 to OG1,
    Val to CG1, Leu χ2 to CD1, Asn χ2 to OD1, His χ2 to ND1).  φ of proline (its N–CA bond is in the ring) and the
    peptide-bond ω are excluded: they keep the template's values.

    Returns
    -------
    list of Dihedral
        Per residue: φ, ψ, χ1, χ2, ... (names ``"phi"``, ``"psi"``, ``"chi1"`` ...).
    """
    names, resnames, resnums, symbols = topology_key(atoms)
    neighbours = bond_graph(atoms)
    heavy = [s != "H" for s in symbols]

    def in_ring(j: int, k: int) -> bool:
        try:
            moving_side(neighbours, j, k)
        except ValueError:
            return True
        return False

    backbone = {(d.residue, d.name): d for d in backbone_dihedrals(atoms)}
    out: list[Dihedral] = []
    for num in dict.fromkeys(resnums):
        for name in ("phi", "psi"):
            d = backbone.get((num, name))
            if d is not None and not in_ring(d.indices[1], d.indices[2]):
                out.append(d)
        members = [i for i in range(len(names)) if resnums[i] == num]
        by_name = {names[i]: i for i in members}
        if "CA" not in by_name or "N" not in by_name:
            continue
        # Walk the side chain outwards from CA (breadth first, by name).
        depth = {by_name["CA"]: 0}
        parent = {by_name["CA"]: by_name["N"]}
        queue = [by_name["CA"]]
        chi = 0
        while queue:
            j = queue.pop(0)
            children = sorted((k for k in neighbours[j] if heavy[k] and k in members and k not in depth
                               and names[k] not in BACKBONE), key=lambda k: names[k])
            for k in children:
                depth[k] = depth[j] + 1
                parent[k] = j
                queue.append(k)
                beyond = sorted((m for m in neighbours[k] if heavy[m] and m != j),
                                key=lambda m: (CHI_PRIORITY.get(symbols[m], 3), names[m]))
                if not beyond or in_ring(j, k):
                    continue
                chi += 1
                out.append(Dihedral(f"chi{chi}", num, (parent[j], j, k, beyond[0])))
    return out
