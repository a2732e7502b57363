"""The pose energy of the ligand references: Vina's docking objective, with Vina-style maps.

E(pose) = inter + intra in kcal/mol — the unnormalised objective AutoDock Vina minimises when it
docks (its reported score divides the inter term by 1 + w·N_rot).  The ligand–pocket term is
read from per-XS-type grid maps (:class:`digmat.ligand.grid.GridMaps`, 0.375 Å like Vina's)
tabulated once per complex by the direct scorer (:class:`digmat.ligand.vina.VinaScore`), with
Vina's per-atom ``curl``; the intramolecular term is computed directly.  A heavy atom outside
the maps costs 1000 kcal/mol, so the box is a hard wall.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from digmat.ligand.grid import GridMaps
from digmat.ligand.pocket import Pocket
from digmat.ligand.vina import VinaScore, curl, prepare_ligand, receptor_ad_types

__all__ = ["HydrogenContacts", "vina_scorer", "VinaPoseEnergy", "pocket_radius_for_maps"]

VINA_CUTOFF = 8.0
"""Å, Vina's pair cutoff."""


def pocket_radius_for_maps(half_width: float) -> float:
    """Å: a pocket of this radius around the box centre holds every receptor atom within Vina's
    cutoff of any point of a cubic box of ``half_width`` — the pocket that :class:`VinaPoseEnergy` needs."""
    return float(half_width) * np.sqrt(3.0) + VINA_CUTOFF


def vina_scorer(pocket: Pocket, mol, center, half_width: float) -> VinaScore:
    """The direct (map-free) :class:`VinaScore` of ``mol`` in ``pocket`` with a cubic box of
    ``half_width`` Å around ``center`` (ligand prepared by meeko, receptor typed from the pocket)."""
    atoms = pocket.atoms
    types = receptor_ad_types(atoms.get_chemical_symbols(), list(atoms.arrays["atomtypes"]),
                              list(atoms.arrays["residuenames"]), atoms.positions)
    size = np.full(3, 2.0 * float(half_width))
    return VinaScore(atoms.positions, types, prepare_ligand(mol), box_center=np.asarray(center, float),
                     box_size=size, cutoff=VINA_CUTOFF)


class VinaPoseEnergy:
    """Vina's inter + intra energy of ligand poses in a fixed pocket, from maps.

    Parameters
    ----------
    pocket : Pocket
        The protonated pocket (its hydrogens type the donors).
    mol : rdkit.Chem.Mol
        The ligand with explicit hydrogens (atom order of the poses).
    center : array_like
        (3,) Å, the box centre.
    half_width : float
        Å: the maps cover ``center`` ± ``half_width`` on each axis.
    spacing : float
        Å between map points.

    Attributes
    ----------
    score : VinaScore
        The direct scorer (exact pairs; slow for many poses).
    maps : GridMaps
        The inter-term maps.
    """

    def __init__(self, pocket: Pocket, mol, center, half_width: float, *, spacing: float = 0.375):
        self.score = vina_scorer(pocket, mol, center, half_width)
        ligand = self.score.ligand
        center = np.asarray(center, float)
        size = np.full(3, 2.0 * float(half_width))
        self.heavy = np.flatnonzero(ligand.xs >= 0)
        self.atom_types = ligand.xs[self.heavy]
        self.maps = GridMaps.compute(self.score.probe_energy, np.unique(self.atom_types), center, size,
                                     spacing=spacing)
        self.num_tors = float(ligand.num_tors)

    def inter(self, positions: Tensor) -> Tensor:
        """Ligand–pocket term (B,) kcal/mol from the maps."""
        per_atom = self.maps.energy(positions[:, self.heavy], self.atom_types, per_atom=True)
        return curl(per_atom).sum(-1)

    def __call__(self, positions: Tensor) -> Tensor:
        """inter + intra (B,) kcal/mol of poses (B, N, 3) Å (differentiable)."""
        x = torch.as_tensor(positions, dtype=self.maps.values.dtype)
        return self.inter(x) + self.score.intra(x)

    def vina_score(self, positions: Tensor) -> Tensor:
        """What ``Vina.score()`` reports, (B,) kcal/mol: inter / (1 + w_rot N_rot), from the maps."""
        x = torch.as_tensor(positions, dtype=self.maps.values.dtype)
        return self.inter(x) / (1.0 + self.score.weights[5] * self.num_tors)


class HydrogenContacts:
    """Vina's repulsion term (kcal/mol) extended to the ligand's hydrogen pairs, which Vina does not see.

    Vina is a united-atom score: torsions that put two hydrogens of the ligand 0.9 Å apart cost it
    nothing, and such a pose is physically impossible (UFF puts the pair 10³–10⁴ kcal/mol up;
    PoseBusters' internal-energy check fails it). Every pair of hydrogens four or more bonds apart
    gets Vina's own repulsion, w·d² for a surface distance d = r − 2 R_H < 0, with Vina's weight
    w = 0.840 kcal/mol/Å² and the hydrogen radius R_H = 1.10 Å (Rowland & Taylor). Only clashes
    cost anything: hydrogens in contact, or closer pairs of the rigid template, add nothing.

    Parameters
    ----------
    mol : rdkit.Chem.Mol
        The ligand with explicit hydrogens (atom order of the positions).
    """

    WEIGHT = 0.840
    """kcal/mol/Å², Vina's repulsion weight."""
    RADIUS = 1.10
    """Å, the van der Waals radius of hydrogen."""

    def __init__(self, mol):
        from rdkit import Chem

        hydrogen = np.array([a.GetAtomicNum() == 1 for a in mol.GetAtoms()])
        bonds = Chem.GetDistanceMatrix(mol)
        i, j = np.nonzero(np.triu(bonds >= 4) & hydrogen[:, None] & hydrogen[None, :])
        self.pairs = torch.as_tensor(np.stack([i, j], 1), dtype=torch.long).reshape(-1, 2)

    def __call__(self, positions: Tensor) -> Tensor:
        """Energies (B,) kcal/mol of positions (B, N, 3) Å."""
        r = (positions[:, self.pairs[:, 0]] - positions[:, self.pairs[:, 1]]).norm(dim=-1)
        return self.WEIGHT * (2 * self.RADIUS - r).clamp_min(0.0).pow(2).sum(-1)
