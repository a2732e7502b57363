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

__all__ = ["StericCore", "vina_scorer", "VinaPoseEnergy", "pocket_radius_for_maps"]

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


class StericCore:
    """A hard core under Vina's soft repulsion, for quenching poses (kcal/mol).

    AutoDock Vina's repulsion is w·d² with w = 0.840 kcal/mol/Å², and it sees heavy atoms only.
    At 300 K its samples, and its local minima, hold contacts that real atoms do not make: an
    N···O contact of 2.2 Å costs Vina about 1.4 kcal/mol, which a flat hydrogen-bond term and the
    rest of the ligand's attraction pay for (UFF's Lennard-Jones term puts it about 20 kcal/mol
    up), and torsions that put two of the ligand's own hydrogens 0.9 Å apart cost nothing
    (PoseBusters' internal-energy check fails such poses). This term adds a hard core: every
    pair closer than ``scale`` times the sum of its van der Waals radii (Bondi's, as RDKit
    tabulates them) costs ``weight``·d², d the shortfall in Å. The pairs are

    * each ligand heavy atom with each pocket heavy atom (protein and cofactors), and
    * the ligand's own atom pairs, hydrogens included, four or more bonds apart (closer pairs
      are held by the template's bonds and angles) and not already closer than the core in the
      template (held there by its rigid geometry).

    Pairs farther apart than the core cost nothing, so Vina's landscape is unchanged wherever atoms
    do not overlap. PoseBusters calls a ligand–protein pair below 0.75 of the van der Waals sum a
    clash; the default core starts at 0.8 of it.

    Parameters
    ----------
    mol : rdkit.Chem.Mol
        The ligand with explicit hydrogens (atom order of the positions), with a conformer: the
        template of the pose space.
    pocket : ase.Atoms, optional
        Pocket atoms (Å); hydrogens are ignored. None: the ligand's own pairs only.
    center : array_like, optional
        (3,) Å: only pocket atoms within ``reach`` Å of it are kept.
    reach : float
        Å; must exceed the farthest a ligand heavy atom goes from ``center`` plus the core.
    scale : float
        The core's fraction of the van der Waals sum.
    weight : float
        kcal/mol/Å².
    """

    def __init__(self, mol, pocket=None, center=None, reach: float = float("inf"), *, scale: float = 0.8,
                 weight: float = 30.0):
        from rdkit import Chem

        table = Chem.GetPeriodicTable()
        radius = np.array([table.GetRvdw(a.GetAtomicNum()) for a in mol.GetAtoms()])
        template = mol.GetConformer().GetPositions()
        apart = np.triu(Chem.GetDistanceMatrix(mol) >= 4)
        core = scale * (radius[:, None] + radius[None, :])
        far = np.linalg.norm(template[:, None] - template[None, :], axis=-1) >= core
        i, j = np.nonzero(apart & far)
        self.pairs = torch.as_tensor(np.stack([i, j], 1), dtype=torch.long).reshape(-1, 2)
        self.pair_core = torch.as_tensor(core[i, j], dtype=torch.float64)
        self.heavy = torch.as_tensor(np.flatnonzero([a.GetAtomicNum() > 1 for a in mol.GetAtoms()]), dtype=torch.long)
        self.pocket = torch.zeros(0, 3, dtype=torch.float64)
        self.pocket_vdw = torch.zeros(len(self.heavy), 0, dtype=torch.float64)  # van der Waals sums (Å)
        if pocket is not None:
            numbers = pocket.get_atomic_numbers()
            keep = numbers > 1
            if center is not None:
                keep &= np.linalg.norm(pocket.positions - np.asarray(center, float), axis=1) <= reach
            keep = np.flatnonzero(keep)
            self.pocket = torch.as_tensor(pocket.positions[keep], dtype=torch.float64)
            pocket_r = np.array([table.GetRvdw(int(z)) for z in numbers[keep]])
            self.pocket_vdw = torch.as_tensor(radius[self.heavy.numpy()][:, None] + pocket_r[None, :])
        self.scale = float(scale)
        self.weight = float(weight)

    def contact_ratio(self, positions: Tensor) -> Tensor:
        """(B,) the smallest ligand–pocket heavy-atom distance over its van der Waals sum, per pose
        (B, N, 3) Å: PoseBusters' clash criterion (< 0.75: a clash); inf without pocket atoms."""
        x = torch.as_tensor(positions, dtype=torch.float64)
        if not len(self.pocket):
            return torch.full((len(x),), float("inf"), dtype=torch.float64)
        return (self._pocket_distances(x) / self.pocket_vdw).amin((-1, -2))

    def _pocket_distances(self, positions: Tensor) -> Tensor:
        """(B, heavy, pocket) Å from the ligand's heavy atoms to the pocket's."""
        x = positions[:, self.heavy]
        return torch.cdist(x, self.pocket.to(x.dtype), compute_mode="donot_use_mm_for_euclid_dist")

    def __call__(self, positions: Tensor) -> Tensor:
        """Energies (B,) kcal/mol of positions (B, N, 3) Å (differentiable)."""
        r = (positions[:, self.pairs[:, 0]] - positions[:, self.pairs[:, 1]]).norm(dim=-1)
        e = (self.pair_core.to(r.dtype) - r).clamp_min(0.0).pow(2).sum(-1)
        if len(self.pocket):
            core = self.scale * self.pocket_vdw.to(r.dtype)
            e = e + (core - self._pocket_distances(positions)).clamp_min(0.0).pow(2).sum((-1, -2))
        return self.weight * e
