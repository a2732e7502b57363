"""Reference ensembles of capped peptides: well-tempered metadynamics on backbone φ/ψ (and χ1).

Plain MD of alanine dipeptide at 300 K does not cross to φ > 0 in nanoseconds, so a
reference needs enhanced sampling.  :func:`run_metadynamics` biases a dipeptide's (φ, ψ)
(every residue's φ for two or three residues, :func:`biased_torsions`) — and, for a dipeptide
with a side chain, its χ1 too (``bias_chi1``: with φ/ψ alone, two
10 ns runs of Phe disagreed on αR by 0.40 vs 0.13, because the slow, unbiased χ1 couples to
the backbone) — with OpenMM's own well-tempered metadynamics (Barducci, Bussi & Parrinello 2008) in
implicit solvent.  At convergence the bias V(s) = −(1 − 1/γ) F(s), so

* the free-energy surface is F(s) = −γ/(γ − 1) V(s) (OpenMM's ``getFreeEnergy``), and
* frames recorded after a burn-in, weighted by exp(V_final(s)/k_B T), are an unbiased
  sample of the Boltzmann distribution (final-bias reweighting).

The two estimates are reported side by side; convergence is judged by independent runs
(different seeds and starting velocities) agreeing on every basin's free energy.
Dynamics use bonds to hydrogen constrained and hydrogen mass repartitioning (4 fs steps):
masses do not change the configurational distribution.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np
from ase import Atoms

from digmat.files import atomic_write_bytes
from digmat.protein.basins import BASINS, assign_basins
from digmat.protein.builder import AMINO_ACIDS
from digmat.protein.extra import require_protein_extra
from digmat.protein.forcefield import ForceFieldConfig, create_system, peptide_topology, topology_key
from digmat.protein.torsions import backbone_dihedrals, dihedral_angles, state_torsions

__all__ = [
    "MAX_REFERENCE_RESIDUES",
    "MetadynamicsConfig",
    "MetadynamicsRun",
    "biased_torsions",
    "grid_in_variable_order",
    "run_metadynamics",
]

KJ_TO_KCAL = 1.0 / 4.184
MAX_REFERENCE_RESIDUES = 3
"""Longest peptide :func:`run_metadynamics` takes: one biased φ per residue, three CVs at most."""


@dataclass(frozen=True)
class MetadynamicsConfig:
    """Settings of one well-tempered metadynamics run.

    Attributes
    ----------
    temperature : float
        K.
    nanoseconds : float
        Length of the biased run (after ``equilibration_ps``).
    timestep_fs, friction_per_ps : float
        Langevin (middle) integrator settings.
    bias_factor : float
        Well-tempered γ = (T + ΔT)/T.
    height_kj : float
        Initial Gaussian height, kJ/mol.
    width_deg : float
        Gaussian width on each torsion, degrees.
    deposit_ps, record_ps, frame_ps : float
        Gaussian deposition, torsion recording and coordinate-frame intervals, ps.
    grid : int
        Bias grid points per torsion (two CVs).
    bias_chi1 : bool
        Also bias χ1 when the peptide has one residue with a χ1 (three CVs: OpenMM's limit).
    grid_3d : int
        Bias grid points per torsion with three CVs.
    burn_in : float
        Fraction of the recorded frames discarded before reweighting.
    equilibration_ps : float
        Unbiased equilibration before the run.
    forcefield : ForceFieldConfig
        Force field (rigid X–H bonds and 3.024 amu hydrogens by default, for 4 fs steps).
    """

    temperature: float = 300.0
    nanoseconds: float = 10.0
    timestep_fs: float = 4.0
    friction_per_ps: float = 1.0
    bias_factor: float = 6.0
    height_kj: float = 1.2
    width_deg: float = 20.0
    deposit_ps: float = 1.0
    record_ps: float = 1.0
    frame_ps: float = 10.0
    grid: int = 72
    bias_chi1: bool = True
    grid_3d: int = 24
    burn_in: float = 0.2
    equilibration_ps: float = 20.0
    forcefield: ForceFieldConfig = field(
        default_factory=lambda: ForceFieldConfig(constraints="HBonds", hydrogen_mass=3.024)
    )

    def steps(self, picoseconds: float) -> int:
        """Integrator steps in ``picoseconds``."""
        return max(1, int(round(picoseconds * 1000.0 / self.timestep_fs)))


@dataclass
class MetadynamicsRun:
    """Result of one run: recorded torsions, bias, frames, and the final free-energy grid.

    Attributes
    ----------
    phi_psi : ndarray, shape (n_records, n_residues, 2)
        (φ, ψ) in degrees every ``record_ps``.
    torsions : ndarray, shape (n_records, n_torsions)
        Every state torsion (:func:`~digmat.protein.torsions.state_torsions`: φ, ψ, χ) in
        degrees at the same times, named by ``torsion_names`` (e.g. ``"chi1:3"``).
    bias_kj : ndarray, shape (n_records,)
        Bias energy of the frame when it was recorded, kJ/mol.
    free_energy_kj : ndarray, shape (n_cv_grid...)
        F(s) on the grid (OpenMM's ``getFreeEnergy``), kJ/mol, axes from −180° in steps of
        360°/grid, in the order of ``cv_names``.
    cv_names : list of str
        e.g. ``["phi2", "psi2", "chi12"]`` (torsion name + residue number).
    frames : ndarray, shape (n_frames, n_atoms, 3), float32
        Coordinates every ``frame_ps``, Å.
    frame_records : ndarray of int, shape (n_frames,)
        Record index of each frame (to look up its weight).
    meta : dict
        Sequence, seed, config, wall time, ns/day, topology key.
    """

    phi_psi: np.ndarray
    bias_kj: np.ndarray
    free_energy_kj: np.ndarray
    cv_names: list[str]
    frames: np.ndarray
    frame_records: np.ndarray
    meta: dict
    torsions: np.ndarray | None = None
    torsion_names: list[str] = field(default_factory=list)
    cv_values: np.ndarray | None = None
    """Biased CVs in degrees, shape (n_records, n_cvs), in the order of ``cv_names`` (runs
    biased on φ/ψ only leave it None: the CVs are then ``phi_psi``)."""

    @property
    def temperature(self) -> float:
        return float(self.meta["config"]["temperature"])

    def final_bias_kj(self) -> np.ndarray:
        """V_final at every recorded frame, kJ/mol (multilinear interpolation on the grid)."""
        gamma = float(self.meta["config"]["bias_factor"])
        bias_grid = -(gamma - 1.0) / gamma * self.free_energy_kj
        cv = self.phi_psi.reshape(len(self.phi_psi), -1) if self.cv_values is None else self.cv_values
        return _periodic_interpolate(bias_grid, cv)

    def weights(self) -> np.ndarray:
        """Normalised final-bias weights of the records (zero inside the burn-in)."""
        kt = 0.0083144626 * self.temperature  # kJ/mol
        v = self.final_bias_kj()
        start = int(round(float(self.meta["config"]["burn_in"]) * len(v)))
        w = np.zeros(len(v))
        w[start:] = np.exp((v[start:] - v[start:].max()) / kt)
        return w / w.sum()

    def grid_populations(self) -> np.ndarray:
        """Basin populations of one residue from the free-energy grid, shape (4,).

        Only for a single residue (CVs φ, ψ and optionally χ1, marginalised): each grid cell
        is assigned by its centre.
        """
        prefixes = ("phi", "psi", "chi1")[:len(self.cv_names)]
        if len(self.cv_names) not in (2, 3) or not all(n.startswith(p) for n, p in zip(self.cv_names, prefixes)):
            raise ValueError("grid populations need one residue's φ, ψ (and at most its χ1) as the CVs")
        n = self.free_energy_kj.shape[0]
        axis = -180.0 + (np.arange(n) + 0.0) * 360.0 / n
        phi, psi = np.meshgrid(axis, axis, indexing="ij")
        kt = 0.0083144626 * self.temperature
        boltz = np.exp(-(self.free_energy_kj - self.free_energy_kj.min()) / kt)
        if boltz.ndim == 3:
            boltz = boltz.sum(axis=2)
        labels = assign_basins(np.stack([phi, psi], axis=-1))
        return np.bincount(labels.ravel(), weights=boltz.ravel(), minlength=len(BASINS)) / boltz.sum()

    def save(self, path) -> None:
        """Write one compressed ``.npz`` (atomically)."""
        def write(handle):
            np.savez_compressed(
                handle, phi_psi=self.phi_psi.astype(np.float32), bias_kj=self.bias_kj.astype(np.float32),
                free_energy_kj=self.free_energy_kj.astype(np.float32), frames=self.frames.astype(np.float32),
                frame_records=self.frame_records.astype(np.int32),
                torsions=np.zeros((len(self.phi_psi), 0), np.float32) if self.torsions is None
                else self.torsions.astype(np.float32),
                cv_values=np.zeros((len(self.phi_psi), 0), np.float32) if self.cv_values is None
                else self.cv_values.astype(np.float32),
                meta=np.array(json.dumps({**self.meta, "cv_names": self.cv_names,
                                          "torsion_names": self.torsion_names})),
            )
        atomic_write_bytes(path, write)

    @classmethod
    def load(cls, path) -> MetadynamicsRun:
        """Read a run written by :meth:`save`."""
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(str(data["meta"]))
            names = meta.pop("torsion_names", [])
            torsions = data["torsions"].astype(float) if "torsions" in data.files else None
            cv_values = data["cv_values"].astype(float) if "cv_values" in data.files else None
            if cv_values is not None and cv_values.shape[1] == 0:
                cv_values = None
            return cls(
                phi_psi=data["phi_psi"].astype(float), bias_kj=data["bias_kj"].astype(float),
                free_energy_kj=data["free_energy_kj"].astype(float), cv_names=meta.pop("cv_names"),
                frames=data["frames"], frame_records=data["frame_records"].astype(int), meta=meta,
                torsions=torsions, torsion_names=names, cv_values=cv_values,
            )


def _periodic_interpolate(grid: np.ndarray, points_deg: np.ndarray) -> np.ndarray:
    """Multilinear interpolation of a periodic grid (axes start at −180°, step 360°/n)."""
    values = np.zeros(len(points_deg))
    dims = grid.ndim
    n = np.array(grid.shape)
    x = ((points_deg + 180.0) % 360.0) / 360.0 * n
    lo = np.floor(x).astype(int)
    frac = x - lo
    for corner in range(2**dims):
        offs = np.array([(corner >> d) & 1 for d in range(dims)])
        idx = tuple(((lo[:, d] + offs[d]) % n[d]) for d in range(dims))
        w = np.prod(np.where(offs == 1, frac, 1.0 - frac), axis=1)
        values += w * grid[idx]
    return values


def run_metadynamics(
    atoms: Atoms,
    config: MetadynamicsConfig = MetadynamicsConfig(),
    *,
    seed: int = 0,
    threads: int | None = None,
    progress: Callable[[float], None] | None = None,
) -> MetadynamicsRun:
    """Well-tempered metadynamics of a capped peptide on the torsions :func:`biased_torsions` picks.

    Parameters
    ----------
    atoms : ase.Atoms
        Named peptide with hydrogens (e.g. from :func:`~digmat.protein.build_peptide`).
    config : MetadynamicsConfig
    seed : int
        Seed of the Langevin noise and the initial velocities.
    threads : int, optional
        OpenMM CPU threads.
    progress : callable, optional
        Called with the fraction done (0–1) about every 1 %.

    Returns
    -------
    MetadynamicsRun
    """
    require_protein_extra("openmm")
    import openmm
    from openmm import app, unit

    dihedrals = backbone_dihedrals(atoms)
    backbone_quads = np.array([d.indices for d in dihedrals])
    tracked = state_torsions(atoms)
    tracked_quads = np.array([d.indices for d in tracked])
    biased = biased_torsions(dihedrals, tracked, config)
    system = create_system(atoms, config.forcefield)
    grid = config.grid if len(biased) <= 2 else config.grid_3d
    variables, names = [], []
    for d in biased:
        cv = openmm.CustomTorsionForce("theta")
        cv.addTorsion(*d.indices)
        width = np.radians(config.width_deg)
        variables.append(app.BiasVariable(cv, -np.pi, np.pi, width, periodic=True, gridWidth=grid + 1))
        names.append(f"{d.name}{d.residue}")
    meta = app.Metadynamics(system, variables, config.temperature * unit.kelvin, config.bias_factor,
                            config.height_kj * unit.kilojoules_per_mole, config.steps(config.deposit_ps))
    integrator = openmm.LangevinMiddleIntegrator(
        config.temperature * unit.kelvin, config.friction_per_ps / unit.picosecond,
        config.timestep_fs * unit.femtoseconds)
    integrator.setRandomNumberSeed(int(seed) + 1)
    platform = openmm.Platform.getPlatformByName("CPU")
    properties = {} if threads is None else {"Threads": str(threads)}
    simulation = app.Simulation(peptide_topology(atoms), system, integrator, platform, properties)
    simulation.context.setPositions(atoms.positions * 0.1)
    simulation.minimizeEnergy()
    simulation.context.setVelocitiesToTemperature(config.temperature * unit.kelvin, int(seed) + 1)
    # Unbiased equilibration: the bias force is part of the system but still zero.
    simulation.step(config.steps(config.equilibration_ps))
    simulation.currentStep = 0

    n_records = int(round(config.nanoseconds * 1000.0 / config.record_ps))
    every = config.steps(config.record_ps)
    frame_every = max(1, int(round(config.frame_ps / config.record_ps)))
    bias_group = max(f.getForceGroup() for f in system.getForces())
    cvs = np.zeros((n_records, len(biased)))
    bias = np.zeros(n_records)
    torsions = np.zeros((n_records, len(tracked)))
    backbone = np.zeros((n_records, len(dihedrals)))
    frames, frame_records = [], []
    start = time.perf_counter()
    for k in range(n_records):
        meta.step(simulation, every)
        cvs[k] = meta.getCollectiveVariables(simulation)
        state = simulation.context.getState(getEnergy=True, groups={bias_group})
        bias[k] = state.getPotentialEnergy().value_in_unit(unit.kilojoules_per_mole)
        pos = simulation.context.getState(getPositions=True).getPositions(asNumpy=True).value_in_unit(unit.angstrom)
        torsions[k] = np.degrees(dihedral_angles(pos, tracked_quads))
        backbone[k] = np.degrees(dihedral_angles(pos, backbone_quads))
        if (k + 1) % frame_every == 0:
            frames.append(pos.astype(np.float32))
            frame_records.append(k)
        if progress is not None and (k + 1) % max(1, n_records // 100) == 0:
            progress((k + 1) / n_records)
    wall = time.perf_counter() - start
    pairs = backbone.reshape(n_records, -1, 2)
    free = grid_in_variable_order(np.asarray(meta.getFreeEnergy().value_in_unit(unit.kilojoules_per_mole)))
    key = topology_key(atoms)
    run_meta = {
        "sequence": "".join(r for r in _sequence(key)), "seed": int(seed), "config": _config_dict(config),
        "wall_s": wall, "ns_per_day": config.nanoseconds / (wall / 86400.0),
        "threads": threads, "openmm": openmm.__version__, "n_atoms": len(atoms),
        "residue_names": list(dict.fromkeys(zip(key[2], key[1]))),
        "grid_layout": "variables, periodic endpoint dropped",
    }
    return MetadynamicsRun(pairs, bias, free, names, np.array(frames, dtype=np.float32),
                           np.array(frame_records, dtype=int), run_meta, torsions=torsions,
                           torsion_names=[f"{d.name}:{d.residue}" for d in tracked],
                           cv_values=None if biased == list(dihedrals) else np.degrees(cvs))


def biased_torsions(dihedrals: list, tracked: list, config: MetadynamicsConfig) -> list:
    """The torsions a run biases (OpenMM's metadynamics takes at most three).

    One residue: its φ and ψ, and its χ1 when it has one and ``config.bias_chi1``.  Two or three
    residues: every residue's φ — the slow backbone angle (the αL/C7ax crossing); ψ moves
    between β/PII and αR within tens of ps at 300 K and is left unbiased (independent runs
    check that the reference converged all the same).

    Raises
    ------
    ValueError
        For more than three residues.
    """
    phis = [d for d in dihedrals if d.name == "phi"]
    if len(phis) > MAX_REFERENCE_RESIDUES:
        raise ValueError(f"metadynamics references take at most {MAX_REFERENCE_RESIDUES} residues (OpenMM "
                         f"biases at most 3 collective variables); this peptide has {len(phis)}")
    if len(phis) > 1:
        return phis
    chi1 = [d for d in tracked if d.name == "chi1"]
    return list(dihedrals) + (chi1 if config.bias_chi1 and len(dihedrals) + len(chi1) <= 3 else [])


def grid_in_variable_order(openmm_grid: np.ndarray) -> np.ndarray:
    """OpenMM's bias/free-energy grid in this module's layout.

    OpenMM stores the grid with the axes in reverse order of the variables (the last
    variable first) and, on a periodic axis, ``gridWidth`` points from −π to +π inclusive (the
    last repeats the first).  Returned: axes in variable order, the repeated point dropped,
    so point i of an axis is at −180° + i·360°/n.
    """
    grid = np.transpose(openmm_grid)
    return grid[(slice(0, -1),) * grid.ndim]


def _sequence(key: tuple) -> list[str]:
    codes = {v: k for k, v in AMINO_ACIDS.items()} | {"HID": "H", "HIE": "H", "HIP": "H"}
    residues = dict(zip(key[2], key[1]))
    return [codes[r] for r in residues.values() if r in codes]


def _config_dict(config: MetadynamicsConfig) -> dict:
    out = asdict(config)
    out["forcefield"] = asdict(config.forcefield)
    out["forcefield"]["forcefield"] = list(config.forcefield.forcefield)
    return out
