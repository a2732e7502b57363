"""Ligand poses as (translation, rotation, torsions) on a fixed template geometry.

A pose of a flexible ligand is its centroid ``t`` (Å, heavy atoms), an orientation ``R`` (a
rotation matrix) and the angles ``τ`` of its rotatable bonds (radians).  Bond lengths, bond
angles, rings and chirality are the template conformer's, so every pose is chemically exact
by construction — the space DiffDock diffuses in.  Positions are

    x(t, R, τ) = R · (X(τ) − c(X(τ))) + t,

where X(τ) is the template with its torsions set (each by a rigid rotation of the atoms on
the side of the bond away from the root fragment) and c the heavy-atom centroid.  The volume
element dt dR dτ (Lebesgue × Haar × flat) is the measure of torsion-space Monte Carlo; the
metric (Fixman) correction of the constrained Cartesian measure is not included.

Rotatable bonds: acyclic single bonds between two atoms with another heavy neighbour each,
excluding amide/thioamide C–N bonds (planar) and bonds next to a triple bond (linear);
H-only rotors (CH3, OH, NH3+) are not torsions of the state (they do not change heavy-atom
positions).  Symmetry-aware RMSD compares heavy atoms under every automorphism of the graph.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from digmat.extras import require_extra
from digmat.torsions import dihedral_angles, moving_side, set_torsions

__all__ = ["ROTATABLE_SMARTS", "PoseSpace"]

ROTATABLE_SMARTS = "[!$(C(=[O,S])[NX3])&!D1&!$(*#*)]-&!@[!$(C(=[O,S])[NX3])&!D1&!$(*#*)]"
"""Single acyclic bonds between non-terminal atoms, neither a (thio)amide C–N nor next to a triple bond."""


@dataclass(frozen=True, eq=False)
class PoseSpace:
    """Poses of one ligand: template geometry, rotatable bonds, automorphisms.

    Build with :meth:`from_mol`.

    Attributes
    ----------
    symbols : tuple of str
        Elements in the Mol's atom order (hydrogens included).
    template : numpy.ndarray
        Shape (N, 3), Å: the template conformer, heavy-atom centroid at the origin.
    torsions : numpy.ndarray
        Shape (M, 4), int: atoms (i, j, k, l) of each rotatable bond j–k; the atoms on k's
        side (away from the root fragment) move.
    moving : numpy.ndarray
        Shape (M, N), bool: the atoms each torsion moves.
    heavy : numpy.ndarray
        Shape (N,), bool.
    automorphisms : numpy.ndarray
        Shape (K, n_heavy), int: heavy-atom permutations that map the graph onto itself
        (identity first), for symmetry-aware RMSD.
    """

    symbols: tuple[str, ...]
    template: np.ndarray
    torsions: np.ndarray
    moving: np.ndarray
    heavy: np.ndarray
    automorphisms: np.ndarray

    @classmethod
    def from_mol(cls, mol, *, max_automorphisms: int = 1000) -> PoseSpace:
        """The pose space of an RDKit Mol with explicit hydrogens and a 3-D conformer (the template)."""
        require_extra("ligand", "rdkit")
        from rdkit import Chem

        if mol.GetNumConformers() == 0:
            raise ValueError("the ligand has no conformer to serve as template")
        if any(a.GetNumImplicitHs() > 0 for a in mol.GetAtoms()):
            raise ValueError("the ligand needs explicit hydrogens (Chem.AddHs(mol, addCoords=True))")
        xyz = mol.GetConformer().GetPositions()
        heavy = np.array([a.GetAtomicNum() > 1 for a in mol.GetAtoms()])
        if not heavy.any():
            raise ValueError("the ligand has no heavy atom")
        neighbours = [[n.GetIdx() for n in a.GetNeighbors()] for a in mol.GetAtoms()]
        root = _root_atom(mol, heavy)
        quads, moving = [], []
        for j, k in mol.GetSubstructMatches(Chem.MolFromSmarts(ROTATABLE_SMARTS)):
            side = moving_side(neighbours, j, k)
            if root in side:  # move the side without the root
                j, k = k, j
                side = moving_side(neighbours, j, k)
            i = next(n for n in sorted(neighbours[j], key=lambda n: (not heavy[n], n)) if n != k)
            l = next(n for n in sorted(neighbours[k], key=lambda n: (not heavy[n], n)) if n != j)
            mask = np.zeros(len(heavy), bool)
            mask[side] = True
            mask[k] = False  # on the axis
            if not heavy[mask].any():  # an H-only rotor (CH3, OH, NH2, NH3+)
                continue
            quads.append((i, j, k, l))
            moving.append(mask)
        heavy_idx = np.flatnonzero(heavy)
        skeleton = _bare_graph(mol)
        matches = skeleton.GetSubstructMatches(skeleton, uniquify=False, useChirality=False,
                                               maxMatches=max_automorphisms)
        autos = np.array(matches, dtype=int) if matches else np.arange(len(heavy_idx))[None]
        identity = np.flatnonzero((autos == np.arange(len(heavy_idx))).all(1))
        autos = np.vstack([autos[identity[:1]], np.delete(autos, identity[:1], axis=0)])
        template = xyz - xyz[heavy].mean(axis=0)
        return cls(
            symbols=tuple(a.GetSymbol() for a in mol.GetAtoms()),
            template=template,
            torsions=np.array(quads, dtype=int).reshape(-1, 4),
            moving=np.array(moving, dtype=bool).reshape(-1, len(heavy)),
            heavy=heavy,
            automorphisms=autos,
        )

    def __post_init__(self) -> None:
        object.__setattr__(self, "_moving_index", [np.flatnonzero(row) for row in self.moving])

    # ------------------------------------------------------------------ sizes
    @property
    def num_atoms(self) -> int:
        return len(self.symbols)

    @property
    def num_torsions(self) -> int:
        return len(self.torsions)

    # ------------------------------------------------------------------ pose -> positions
    def conformers(self, tau: Tensor) -> Tensor:
        """The template with torsions ``tau`` (B, M) set, heavy-atom centroid at the origin, (B, N, 3) Å."""
        x = torch.as_tensor(self.template, dtype=tau.dtype, device=tau.device).expand(tau.shape[0], -1, -1)
        if self.num_torsions:  # each rotates its subtree about j-k
            moving = [torch.as_tensor(index, device=tau.device) for index in self._moving_index]
            x = set_torsions(x, self.torsions.tolist(), moving, tau)
        heavy = torch.as_tensor(self.heavy, device=tau.device)
        return x - x[:, heavy].mean(dim=1, keepdim=True)

    def positions(self, t: Tensor, rotation: Tensor, tau: Tensor) -> Tensor:
        """Atom positions (B, N, 3) Å of poses: centroids ``t`` (B, 3) Å, rotations (B, 3, 3), torsions (B, M) rad."""
        return self.conformers(tau) @ rotation.transpose(1, 2) + t[:, None, :]

    # ------------------------------------------------------------------ positions -> pose
    def coordinates(self, positions) -> tuple[Tensor, Tensor, Tensor]:
        """(t, R, τ) of positions (B, N, 3) Å that are poses of this ligand (Kabsch on heavy atoms)."""
        x = torch.as_tensor(np.asarray(positions), dtype=torch.float64)
        if x.ndim == 2:
            x = x[None]
        tau = torch.as_tensor(dihedral_angles(x.numpy(), self.torsions), dtype=x.dtype) if self.num_torsions \
            else x.new_zeros(len(x), 0)
        body = self.conformers(tau)[:, self.heavy]
        target = x[:, self.heavy]
        t = target.mean(dim=1)
        h = body.transpose(1, 2) @ (target - t[:, None])
        u, _, vt = torch.linalg.svd(h)
        d = torch.sign(torch.linalg.det(vt.transpose(1, 2) @ u.transpose(1, 2)))
        fix = torch.diag_embed(torch.stack([torch.ones_like(d), torch.ones_like(d), d], -1))
        rotation = vt.transpose(1, 2) @ fix @ u.transpose(1, 2)
        return t, rotation, tau

    # ------------------------------------------------------------------ comparison
    def rmsd(self, a, b) -> np.ndarray:
        """Symmetry-aware heavy-atom RMSD (Å, no superposition) between poses a (A, N, 3) and b (B, N, 3).

        Returns shape (A, B): the minimum over the graph's automorphisms.
        """
        a = np.asarray(a, float).reshape(-1, self.num_atoms, 3)[:, self.heavy]
        b = np.asarray(b, float).reshape(-1, self.num_atoms, 3)[:, self.heavy]
        best = np.full((len(a), len(b)), np.inf)
        for perm in self.automorphisms:
            d = ((a[:, None, perm] - b[None]) ** 2).sum(-1).mean(-1)
            best = np.minimum(best, d)
        return np.sqrt(best)


def _bare_graph(mol):
    """Heavy atoms and their connectivity only (elements kept; bond orders, aromaticity, charges dropped).

    Its automorphisms treat resonance-equivalent atoms (the two O of a carboxylate, the N of an
    amidinium) as the same, as symmetry-corrected RMSD tools do.
    """
    from rdkit import Chem

    rw = Chem.RWMol(Chem.RemoveHs(mol, sanitize=False))
    for atom in rw.GetAtoms():
        atom.SetFormalCharge(0)
        atom.SetIsAromatic(False)
        atom.SetNoImplicit(True)
        atom.SetNumExplicitHs(0)
    for bond in rw.GetBonds():
        bond.SetBondType(Chem.BondType.SINGLE)
        bond.SetIsAromatic(False)
    bare = rw.GetMol()
    bare.UpdatePropertyCache(strict=False)
    Chem.FastFindRings(bare)
    return bare


def _root_atom(mol, heavy: np.ndarray) -> int:
    """The heavy atom with the smallest eccentricity (the graph centre): it never moves."""
    from rdkit import Chem

    d = Chem.GetDistanceMatrix(mol)[np.ix_(heavy, heavy)]
    return int(np.flatnonzero(heavy)[np.argmin(d.max(axis=1))])

