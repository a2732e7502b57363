"""A ligand in a fixed pocket as a diffusion system: pose ↔ rigid state, and what a model sees.

The state of a pose (:class:`~digmat.ligand.pose.PoseSpace`) is a
:class:`~digmat.core.RigidState`: flat entries ``x = ((t − centre)/L, τ)`` — the heavy-atom
centroid in units of ``length_scale`` L (Å, Euclidean) and the M torsions (rad, period 2π) —
and the orientation R. The forward process is :class:`~digmat.core.RigidDiffusion`: DiG's VP
process on the centroid (so the prior is N(centre, L² I)), the wrapped process on the
torsions, IGSO3 Brownian motion on R (Haar prior).

The conditioning is the pocket (its heavy atoms: positions and chemistry) and the ligand graph
(per heavy atom: element, aromaticity, ring, degree, hydrogens, charge, hybridisation,
donor/acceptor), so one score model serves any complex.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from ase import Atoms
from torch import Tensor

from digmat.core import Diffusion, NoiseSchedule, RigidDiffusion, RigidState, StateSpace
from digmat.core.so3 import SO3Schedule
from digmat.ligand.energy import VINA_CUTOFF
from digmat.ligand.pocket import Pocket
from digmat.ligand.pose import PoseSpace

__all__ = ["LIGAND_ELEMENTS", "POCKET_ELEMENTS", "LigandSystem", "ligand_atom_features", "pocket_atom_features",
           "site_pocket_radius"]

LIGAND_ELEMENTS = ("C", "N", "O", "S", "P", "F", "Cl", "Br", "I")
"""Ligand elements with their own one-hot entry (others share one)."""
POCKET_ELEMENTS = ("C", "N", "O", "S")
"""Pocket elements with their own one-hot entry (metals, P of cofactors, ... share one)."""
BACKBONE = ("N", "CA", "C", "O")
AMINO_ACIDS = frozenset("ALA ARG ASN ASP CYS GLN GLU GLY HIS HID HIE HIP ILE LEU LYS MET PHE PRO SER THR TRP "
                        "TYR VAL CYX ASH GLH LYN ACE NME".split())


def site_pocket_radius(box_radius: float, extent: float, cutoff: float) -> float:
    """Å: the pocket radius (:func:`~digmat.ligand.extract_pocket`) around the site centre that holds
    every protein atom within ``cutoff`` of a ligand whose centroid stays within ``box_radius`` of the
    centre and whose atoms lie within ``extent`` of its centroid (+ 1 Å margin); at least Vina's 8 Å
    cutoff, so the same pocket scores the poses."""
    return float(box_radius + extent + max(cutoff, VINA_CUTOFF) + 1.0)


def _one_hot(value: str, choices: tuple[str, ...]) -> list[float]:
    return [float(value == c) for c in choices] + [float(value not in choices)]


def ligand_atom_features(mol) -> np.ndarray:
    """Per heavy atom of an RDKit Mol (explicit H), in atom order: element one-hot (10), aromatic,
    in ring, degree/4, hydrogens/3, formal charge, sp/sp2/sp3, H-bond donor, acceptor; (n_heavy, 20)."""
    from rdkit import Chem

    hyb = (Chem.HybridizationType.SP, Chem.HybridizationType.SP2, Chem.HybridizationType.SP3)
    rows = []
    for a in mol.GetAtoms():
        if a.GetAtomicNum() == 1:
            continue
        n_h = sum(n.GetAtomicNum() == 1 for n in a.GetNeighbors())
        polar = a.GetSymbol() in ("N", "O")
        donor = polar and n_h > 0
        acceptor = a.GetSymbol() == "O" or (a.GetSymbol() == "N" and n_h == 0 and a.GetFormalCharge() <= 0
                                            and not (a.GetIsAromatic() and a.GetDegree() == 3))
        rows.append(_one_hot(a.GetSymbol(), LIGAND_ELEMENTS) + [
            float(a.GetIsAromatic()), float(a.IsInRing()), a.GetDegree() / 4, n_h / 3, float(a.GetFormalCharge()),
            *(float(a.GetHybridization() == h) for h in hyb), float(donor), float(acceptor)])
    return np.array(rows, dtype=np.float64)


def pocket_atom_features(atoms: Atoms) -> tuple[np.ndarray, np.ndarray]:
    """Heavy atoms of a pocket: indices (n,) and features (n, 9): element one-hot (5), H-bond donor
    (N/O with a hydrogen within 1.2 Å), acceptor (O; N without H), backbone, non-protein group."""
    numbers = atoms.numbers
    heavy = np.flatnonzero(numbers > 1)
    pos = atoms.positions
    hyd = pos[numbers == 1]
    names = atoms.arrays.get("atomtypes", np.array([""] * len(atoms)))
    resn = atoms.arrays.get("residuenames", np.array(["UNK"] * len(atoms)))
    rows = []
    for i in heavy:
        sym = atoms[i].symbol
        has_h = bool(len(hyd)) and float(np.min(np.linalg.norm(hyd - pos[i], axis=1))) < 1.2
        polar = sym in ("N", "O")
        rows.append(_one_hot(sym, POCKET_ELEMENTS) + [
            float(polar and has_h), float(sym == "O" or (sym == "N" and not has_h)),
            float(str(names[i]) in BACKBONE and str(resn[i]) in AMINO_ACIDS), float(str(resn[i]) not in AMINO_ACIDS)])
    return heavy, np.array(rows, dtype=np.float64).reshape(-1, len(POCKET_ELEMENTS) + 5)


class LigandSystem:
    """One ligand in one pocket: the :class:`~digmat.systems.SystemAdapter` of ligand poses.

    Parameters
    ----------
    mol
        RDKit Mol with explicit hydrogens; its conformer is the template (bonds, angles, rings).
    pocket
        The pocket (:func:`~digmat.ligand.extract_pocket`), fixed.
    center
        (3,) Å: centre of the binding site (prior mean of the centroid).
    length_scale
        L, Å: prior std of the centroid per axis.
    rotation
        SO(3) noise range (its sigma_min, sigma_max clip the tied rotation noise; :meth:`diffusion`).
    """

    def __init__(self, mol, pocket: Pocket, center, *, length_scale: float = 3.0,
                 rotation: SO3Schedule = SO3Schedule(sigma_min=0.01, sigma_max=3.0)):
        if not length_scale > 0:
            raise ValueError(f"length_scale must be > 0 Å, got {length_scale}")
        self.mol = mol
        self.pose = PoseSpace.from_mol(mol)
        self.pocket = pocket
        self.center = np.asarray(center, dtype=np.float64).reshape(3)
        self.length_scale = float(length_scale)
        self.rotation = rotation
        self.num_torsions = self.pose.num_torsions
        self.dim = 3 + self.num_torsions
        period = torch.tensor([0.0] * 3 + [2 * math.pi] * self.num_torsions)
        self.space = StateSpace((self.dim,), period=period, noise_scale=1.0)
        self.ligand_features = ligand_atom_features(mol)
        idx, self.pocket_features = pocket_atom_features(pocket.atoms)
        self.pocket_positions = pocket.atoms.positions[idx]
        heavy = np.flatnonzero(self.pose.heavy)
        where = {int(a): n for n, a in enumerate(heavy)}
        tors = self.pose.torsions
        self.torsion_axes = np.array([[where[int(j)], where[int(k)]] for _, j, k, _ in tors], dtype=int).reshape(-1, 2)
        self.torsion_moving = self.pose.moving[:, heavy] if self.num_torsions else np.zeros((0, len(heavy)), bool)

    def __repr__(self) -> str:
        return (f"LigandSystem({self.pose.num_atoms} atoms, {self.num_torsions} torsions, "
                f"pocket {len(self.pocket_positions)} heavy atoms)")

    # ------------------------------------------------------------------ protocol
    @property
    def radius_of_gyration(self) -> float:
        """Å, of the template's heavy atoms about their centroid."""
        body = self.pose.template[self.pose.heavy]
        return float(np.sqrt(((body - body.mean(axis=0)) ** 2).sum(axis=1).mean()))

    def diffusion(self, schedule: NoiseSchedule = NoiseSchedule()) -> RigidDiffusion:
        """Centroid and torsions under ``schedule``; the orientation on the same clock, its noise
        sigma_R = sigma_tilde(t) L / r_g (clipped to :attr:`rotation`'s range), so that a turn moves the
        atoms about as far as the centroid noise moves the centroid."""
        return RigidDiffusion(Diffusion(self.space, schedule), self.rotation,
                              rotation_scale=self.length_scale / max(self.radius_of_gyration, 0.5))

    def conditioning(self) -> dict:
        """Ligand SMILES, pocket residues and site centre (JSON-able)."""
        from rdkit import Chem

        return {"kind": "ligand", "smiles": Chem.MolToSmiles(Chem.RemoveHs(self.mol)),
                "pocket_residues": list(self.pocket.residues), "hetero": list(self.pocket.hetero),
                "center": self.center.tolist(), "torsions": self.num_torsions}

    def to_state(self, configurations, *, dtype: torch.dtype = torch.float64) -> RigidState:
        """States of poses: ``ase.Atoms`` (one or a list) or positions (B, N, 3) / (N, 3) Å, in the
        Mol's atom order; inputs are not modified."""
        if isinstance(configurations, Atoms):
            configurations = [configurations]
        if isinstance(configurations, (list, tuple)) and configurations and isinstance(configurations[0], Atoms):
            if any(a.get_chemical_symbols() != list(self.pose.symbols) for a in configurations):
                raise ValueError("the configurations are not this ligand (elements or atom order differ)")
            configurations = np.stack([a.positions for a in configurations])
        return self.state_of(*self.pose.coordinates(configurations), dtype=dtype)

    def state_of(self, centroid, rotation, torsions, *, dtype: torch.dtype = torch.float64) -> RigidState:
        """States of pose coordinates: heavy-atom centroids (B, 3) Å, rotations (B, 3, 3) and
        torsions (B, M) rad (:meth:`~digmat.ligand.pose.PoseSpace.coordinates`)."""
        t, tau = torch.as_tensor(centroid, dtype=torch.float64), torch.as_tensor(torsions, dtype=torch.float64)
        x = torch.cat([(t - torch.as_tensor(self.center)) / self.length_scale, tau.reshape(len(t), -1)], dim=1)
        return RigidState(self.space.wrap(x).to(dtype), torch.as_tensor(rotation).to(dtype))

    def centroids(self, state: RigidState) -> Tensor:
        """Heavy-atom centroids (B, 3) Å of states (the inverse of :meth:`state_of`'s scaling)."""
        x = state.x
        return x[:, :3] * self.length_scale + torch.as_tensor(self.center, dtype=x.dtype, device=x.device)

    def positions(self, state: RigidState) -> Tensor:
        """Atom positions (B, N, 3) Å of states, Mol atom order."""
        return self.pose.positions(self.centroids(state), state.R, state.x[:, 3:])

    def to_atoms(self, state: RigidState) -> list[Atoms]:
        """Ligand poses as new ``ase.Atoms`` (hydrogens included)."""
        return [Atoms(self.pose.symbols, positions=p) for p in self.positions(state).detach().cpu().numpy()]

    def centroid_distance(self, state: RigidState) -> Tensor:
        """Distance (B,) Å of each pose's centroid from the site centre."""
        return state.x[:, :3].norm(dim=1) * self.length_scale
