"""Peptides on the torsion torus: conformations ↔ states of backbone φ/ψ and side-chain χ.

A state is the vector of a peptide's state torsions
(:func:`digmat.protein.torsions.state_torsions`) in radians, each on a circle of period 2π.
Bond lengths, bond angles, the peptide bonds (ω), ring geometry, methyl and hydroxyl
rotors and chirality come from one template conformation (built and minimised in the force
field), so every decoded conformation is chemically exact by construction: its bonds and
angles are the template's to round-off.  Decoding sets each torsion by a rigid rotation of
the atoms beyond its bond (:func:`digmat.protein.torsions.set_dihedrals`).

The conditioning is the sequence and, per state entry, which torsion of which residue it
is, with chemistry descriptors of each residue computed from the template (side-chain atoms
by element, branching, rings, charge, polar hydrogens), so a model can transfer to amino
acids it has not seen.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from ase import Atoms
from torch import Tensor

from digmat.core import Diffusion, NoiseSchedule, StateSpace
from digmat.protein.builder import AMINO_ACIDS, build_peptide, check_sequence
from digmat.protein.forcefield import create_system, topology_key
from digmat.protein.torsions import (
    BACKBONE,
    Dihedral,
    bond_graph,
    dihedral_angles,
    moving_side,
    nonlocal_pairs,
    set_dihedrals,
    state_torsions,
)
from digmat.torsions import set_torsions

__all__ = ["CANONICAL_BACKBONES", "TORSION_KINDS", "RESIDUE_FEATURES", "PeptideSystem", "residue_descriptors"]

TORSION_KINDS = ("phi", "psi", "chi1", "chi2", "chi3", "chi4", "chi5")
"""Torsion kinds a state entry can be (one-hot in the token features)."""

CANONICAL_BACKBONES = ((-120.0, 130.0), (-60.0, -45.0))
"""(φ, ψ) in degrees of the backbones :meth:`PeptideSystem.steric_profiles` scans at: β and αR."""

RESIDUE_FEATURES = (
    "side_C", "side_N", "side_O", "side_S", "n_chi", "beta_branched", "gamma_branched", "ring_atoms",
    "aromatic_ring", "charge", "polar_H", "is_gly", "is_pro",
)
"""Names of the per-residue chemistry descriptors (:func:`residue_descriptors`)."""


def residue_descriptors(atoms: Atoms) -> dict[int, np.ndarray]:
    """Chemistry descriptors of every amino-acid residue of a named peptide.

    Computed from the structure and the force field (no per-residue table), so they are
    defined for any residue the force field knows.

    Returns
    -------
    dict
        residue number → array of len(:data:`RESIDUE_FEATURES`) floats.
    """
    names, resnames, resnums, symbols = topology_key(atoms)
    neighbours = bond_graph(atoms)
    system = create_system(atoms)
    nonbonded = next(system.getForce(i) for i in range(system.getNumForces())
                     if type(system.getForce(i)).__name__ == "NonbondedForce")
    from openmm import unit

    charges = np.array([nonbonded.getParticleParameters(i)[0].value_in_unit(unit.elementary_charge)
                        for i in range(len(names))])
    chi_count: dict[int, int] = {}
    for d in state_torsions(atoms):
        if d.name.startswith("chi"):
            chi_count[d.residue] = chi_count.get(d.residue, 0) + 1
    out = {}
    for num in dict.fromkeys(resnums):
        res = resnames[resnums.index(num)]
        if res in ("ACE", "NME", "NH2"):
            continue
        members = [i for i in range(len(names)) if resnums[i] == num]
        side = [i for i in members if names[i] not in BACKBONE and symbols[i] != "H"]
        by_name = {names[i]: i for i in members}
        heavy_nbrs = lambda i: [j for j in neighbours[i] if symbols[j] != "H"]  # noqa: E731
        cb = by_name.get("CB")
        beta = 0.0 if cb is None else float(len([j for j in heavy_nbrs(cb) if names[j] != "CA"]) >= 2)
        gamma = 0.0
        for g in side:
            if cb is not None and g in heavy_nbrs(cb) and len([j for j in heavy_nbrs(g) if j != cb]) >= 2:
                gamma = 1.0
        ring = set()
        for i in side:
            for j in heavy_nbrs(i):
                if j in side and i < j:
                    try:
                        moving_side(neighbours, i, j)
                    except ValueError:
                        ring.update((i, j))
        sp2_ring = any(len(neighbours[i]) == 3 for i in ring if symbols[i] == "C")
        polar_h = sum(1 for i in members if symbols[i] == "H" and names[i] not in BACKBONE
                      and any(symbols[j] in ("N", "O", "S") for j in neighbours[i]))
        count = lambda el: float(sum(symbols[i] == el for i in side))  # noqa: E731
        out[num] = np.array([
            count("C"), count("N"), count("O"), count("S"), float(chi_count.get(num, 0)), beta, gamma,
            float(len(ring)), float(sp2_ring), float(round(charges[members].sum())), float(polar_h),
            float(res == "GLY"), float(res == "PRO"),
        ])
    return out


class PeptideSystem:
    """One peptide: its template, state torsions, state space and conditioning.

    Parameters
    ----------
    template : ase.Atoms
        Named peptide with hydrogens (e.g. :func:`~digmat.protein.build_peptide`); its bond
        lengths and angles are those of every decoded conformation.

    Attributes
    ----------
    torsions : list of Dihedral
        The state entries, in order.
    space : StateSpace
        ``(dim,)``, every entry periodic with period 2π, noise scale 1 rad.
    """

    def __init__(self, template: Atoms):
        self.template = template.copy()
        self.template.calc = None
        self.key = topology_key(self.template)
        self.torsions: list[Dihedral] = state_torsions(self.template)
        if not self.torsions:
            raise ValueError("this peptide has no rotatable torsion")
        self.dim = len(self.torsions)
        # Periodic noise std = σ̃(t) radians: 0.6° at t_min, uniform on the circle from σ̃ ≈ 2.5.
        self.space = StateSpace((self.dim,), period=2 * math.pi, noise_scale=1.0)
        self._quads = np.array([d.indices for d in self.torsions])
        order = list(dict.fromkeys(self.key[2]))
        residues = [num for num in order if self.key[1][self.key[2].index(num)] not in ("ACE", "NME", "NH2")]
        codes = {v: k for k, v in AMINO_ACIDS.items()} | {"HID": "H", "HIE": "H", "HIP": "H"}
        self.sequence = "".join(codes.get(self.key[1][self.key[2].index(n)], "X") for n in residues)
        self.residues = residues
        self.descriptors = residue_descriptors(self.template)
        self._tables: dict[tuple, dict] = {}

    @classmethod
    def from_sequence(cls, sequence: str, *, seed: int = 0) -> PeptideSystem:
        """The system of ACE-sequence-NME with a template built by :func:`build_peptide`."""
        return cls(build_peptide(check_sequence(sequence), seed=seed))

    def __repr__(self) -> str:
        return f"PeptideSystem(ACE-{self.sequence}-NME, {self.dim} torsions)"

    def conditioning(self) -> dict:
        """Sequence and the state's torsion names (JSON-able)."""
        return {"kind": "peptide", "sequence": self.sequence,
                "torsions": [f"{d.name}:{d.residue}" for d in self.torsions]}

    def diffusion(self, schedule: NoiseSchedule = NoiseSchedule()) -> Diffusion:
        """The forward process on the torsion torus."""
        return Diffusion(self.space, schedule)

    def token_features(self) -> np.ndarray:
        """Per state entry: torsion kind one-hot, its residue's descriptors, the neighbours'
        descriptors, and the residue's place in the chain; shape ``(dim, F)``."""
        n_res = len(self.residues)
        zero = np.zeros(len(RESIDUE_FEATURES))
        rows = []
        for d in self.torsions:
            kind = np.zeros(len(TORSION_KINDS))
            kind[TORSION_KINDS.index(d.name)] = 1.0
            k = self.residues.index(d.residue)
            prev = self.descriptors[self.residues[k - 1]] if k > 0 else zero
            nxt = self.descriptors[self.residues[k + 1]] if k + 1 < n_res else zero
            place = np.array([k / max(1, n_res - 1), float(k == 0), float(k == n_res - 1), float(n_res)])
            rows.append(np.concatenate([kind, self.descriptors[d.residue], prev, nxt, place]))
        return np.array(rows)

    @staticmethod
    def num_token_features() -> int:
        """Length F of :meth:`token_features` rows."""
        return len(TORSION_KINDS) + 3 * len(RESIDUE_FEATURES) + 4

    def steric_profiles(self, points: int = 36) -> np.ndarray:
        """Steric clearance of each state torsion over a full turn, shape ``(dim, 2, points)``.

        For each backbone of :data:`CANONICAL_BACKBONES` (every residue's φ/ψ set to it, side
        chains at the template's χ) the torsion is turned to the angles 2πm/points (the state's
        convention) with everything else fixed, and its :meth:`clearance` is read.  It tells a
        model which angles the residue's own atoms forbid, also for residues it was not trained on.
        """
        base = self.to_state(self.template)[0]
        grid = torch.arange(points, dtype=base.dtype) * (2 * math.pi / points)
        rows = torch.arange(self.dim)
        out = np.zeros((self.dim, len(CANONICAL_BACKBONES), points))
        for b, (phi, psi) in enumerate(CANONICAL_BACKBONES):
            start = base.clone()
            for t, d in enumerate(self.torsions):
                if d.name in ("phi", "psi"):
                    start[t] = math.radians(phi if d.name == "phi" else psi)
            states = start.repeat(self.dim, points, 1)  # (dim, points, dim): row t turns torsion t
            states[rows, :, rows] = grid
            turned = self.clearance(states.reshape(-1, self.dim)).reshape(self.dim, points, self.dim)
            out[:, b] = turned[rows, :, rows].numpy()
        return out

    def _steric_tables(self, like: Tensor) -> dict:
        """Cached per device and dtype: what :meth:`positions_of` and :meth:`clearance` use."""
        key = (like.device, like.dtype)
        if key not in self._tables:
            from ase.data.vdw import vdw_radii

            neighbours = bond_graph(self.template)
            i, j = nonlocal_pairs(neighbours)
            moving = np.zeros((self.dim, len(self.template)), dtype=bool)
            for t, d in enumerate(self.torsions):
                moving[t, moving_side(neighbours, d.indices[1], d.indices[2])] = True
            radii = np.array([vdw_radii[z] for z in self.template.numbers])
            as_t = lambda a: torch.as_tensor(a, device=like.device)  # noqa: E731
            self._tables[key] = {
                "template": as_t(self.template.positions).to(like.dtype),
                "moving": [as_t(np.flatnonzero(row)) for row in moving], "i": as_t(i), "j": as_t(j),
                "radii": as_t(radii[i] + radii[j]).to(like.dtype), "cross": as_t(moving[:, i] != moving[:, j]),
            }
        return self._tables[key]

    def positions_of(self, states: Tensor) -> Tensor:
        """Atom positions ``(B, N, 3)`` in Å of states ``(B, dim)``, in torch (the same rigid
        rotations as :meth:`to_atoms`, batched; the template's bonds and angles)."""
        tab = self._steric_tables(states)
        template = tab["template"].expand(states.shape[0], -1, -1)
        return set_torsions(template, self._quads.tolist(), tab["moving"], states)

    def contact_ratios(self, states: Tensor) -> Tensor:
        """d_ij / (R_i + R_j) in the conformation of each state for every pair of atoms four or
        more bonds apart (Bondi radii, hydrogens included), shape ``(B, pairs)``, differentiable;
        below 0.6 is a clash (:func:`~digmat.tasks.peptide_sampling.clash_mask`'s criterion)."""
        tab = self._steric_tables(states)
        pos = self.positions_of(states)
        return torch.linalg.norm(pos[:, tab["i"]] - pos[:, tab["j"]], dim=-1) / tab["radii"]

    def clearance(self, states: Tensor) -> Tensor:
        """Steric clearance of each torsion in the conformation of each state, shape ``(B, dim)``:
        the smallest :meth:`contact_ratios` entry over the pairs the torsion moves relative to
        each other, clipped to 1.5."""
        tab = self._steric_tables(states)
        ratio = self.contact_ratios(states).clamp(max=1.5)
        far = torch.full_like(ratio, 1.5)  # one torsion at a time: memory stays B × pairs on long peptides
        return torch.stack([torch.where(cross[None], ratio, far).min(dim=-1).values for cross in tab["cross"]], -1)

    def residue_pairs(self) -> np.ndarray:
        """Index of each state entry's residue in :attr:`residues`, shape ``(dim,)``."""
        return np.array([self.residues.index(d.residue) for d in self.torsions])

    # ------------------------------------------------------------------ Atoms <-> states
    def _check(self, atoms: Atoms) -> None:
        if topology_key(atoms) != self.key:
            raise ValueError(f"the conformation is not {self!r} (different atoms or names)")

    def torsion_angles(self, positions: np.ndarray) -> np.ndarray:
        """State torsions in radians of positions ``(..., N, 3)``."""
        return dihedral_angles(positions, self._quads)

    def to_state(self, configurations: Atoms | Sequence[Atoms], *, dtype: torch.dtype = torch.float64) -> Tensor:
        """States ``(B, dim)`` in [0, 2π) of conformations of this peptide; inputs unchanged."""
        if isinstance(configurations, Atoms):
            configurations = [configurations]
        for atoms in configurations:
            self._check(atoms)
        angles = np.stack([self.torsion_angles(a.positions) for a in configurations])
        return torch.tensor(np.mod(angles, 2 * math.pi), dtype=dtype)

    def states_from_degrees(self, torsions_deg: np.ndarray, *, dtype: torch.dtype = torch.float64) -> Tensor:
        """States ``(B, dim)`` from torsions in degrees (e.g. a reference's recorded ones)."""
        t = np.asarray(torsions_deg, dtype=float).reshape(-1, self.dim)
        return torch.tensor(np.mod(np.radians(t), 2 * math.pi), dtype=dtype)

    def to_atoms(self, states: Tensor) -> list[Atoms]:
        """Conformations (new Atoms, the template's bonds and angles) of states ``(B, dim)``."""
        self.space.check(states, "states")
        degrees = np.degrees(states.detach().double().cpu().numpy())
        return [set_dihedrals(self.template, self.torsions, row) for row in degrees]
