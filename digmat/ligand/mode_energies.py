"""Binding modes weighed by a calculator: relaxed minima and their harmonic free energies.

A model (or a search) proposes binding modes; :func:`weigh_modes` asks physics how probable
each is.  A few of every mode's poses (its lowest-energy ones) are relaxed with the calculator
in the fixed pocket (L-BFGS on the ligand's atoms, a fresh calculator per start) and the lowest minimum they reach is the
mode's; modes that reach the same minimum (symmetry-aware RMSD below ``same_minimum_rmsd``)
are counted once, and each distinct minimum gets its harmonic
free energy from a finite-difference Hessian of the ligand's atoms — the pocket is fixed, so
all 3N modes are vibrations.  The populations are the harmonic-superposition (mining-minima)
estimate ``p_i ∝ exp(−(E_i + F_vib,i(T)) / k_B T)`` over the relaxed minima: the same
thermochemistry as the adsorption reference search (:mod:`digmat.adsorption.thermo`).

What it does not include, and says so in its output: modes that were not relaxed (the
``model_coverage`` figure is the model's probability of those that were), the anharmonic
breadth of a flexible ligand's basin beyond its Hessian, and the pocket's own motion.

:func:`ligand_calculator` names the calculators for ligands in pockets: ``gfnff`` (GFN-FF with
ALPB implicit water) and ``gfnff-vacuum``.

Units: Å, eV (calculator), kcal/mol (reported), K.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import numpy as np
from ase import Atoms, units

from digmat.adsorption.thermo import (boltzmann_probabilities, finite_difference_hessian, harmonic_free_energy,
                                     vibrational_analysis)
from digmat.ligand.physics import bond_anomalies, energy_anomalies, gfnff_calculator, ligand_slice, relax_ligand

__all__ = ["LIGAND_CALCULATORS", "ModeEnergyConfig", "ModeWeights", "RelaxedMode", "check_ligand_calculator",
           "ligand_calculator", "reweight_samples", "spread_populations", "weigh_clustered_modes", "weigh_modes"]

#: Calculator names for a ligand in a pocket → ALPB solvent of GFN-FF ("" for vacuum).
LIGAND_CALCULATORS = {"gfnff": "h2o", "gfnff-vacuum": ""}
#: kcal/mol per eV.
EV_TO_KCAL = 1.0 / (units.kcal / units.mol)


def check_ligand_calculator(name: str) -> str:
    """The key of a ligand calculator name (case-insensitive); a one-line ValueError otherwise.

    Also checks that the calculator's package is installed, so a run can refuse before sampling.
    """
    key = str(name).strip().lower()
    if key not in LIGAND_CALCULATORS:
        raise ValueError(f"unknown ligand calculator {name!r}; available: {', '.join(LIGAND_CALCULATORS)}")
    from digmat.extras import require_extra

    require_extra("ligand", "gfnff")
    return key


def ligand_calculator(name: str, charge: int):
    """A fresh ASE calculator ``name`` (:data:`LIGAND_CALCULATORS`) for a complex of total ``charge`` (e)."""
    return gfnff_calculator(charge, solvent=LIGAND_CALCULATORS[check_ligand_calculator(name)])


@dataclass(frozen=True)
class ModeEnergyConfig:
    """How modes are weighed.

    Attributes
    ----------
    max_modes : int
        Most modes relaxed (the most populated first).
    starts_per_mode : int
        Poses relaxed per mode (its lowest-energy ones); the mode's minimum is the lowest reached.
    min_population : float
        Modes below this model population are not relaxed.
    pocket_radius : float
        Å: the fixed pocket holds every residue with a heavy atom this close to a heavy atom of
        any representative (one pocket for all modes, so their energies compare).
    fmax : float
        eV/Å, the relaxation's convergence on the ligand's atoms.
    steps : int
        Most optimiser steps per start (:func:`~digmat.ligand.physics.relax_ligand`).
    harmonic : bool
        Add the harmonic vibrational free energy (6N calculator calls per distinct minimum);
        False: populations from the relaxed energies alone.
    delta : float
        Å, finite-difference displacement of the Hessian.
    same_minimum_rmsd : float
        Å: relaxed poses closer than this (symmetry-aware heavy-atom RMSD) are one minimum.
    harmonic_window : float or None
        kcal/mol: only distinct minima whose relaxed energy lies within this of the lowest get a
        Hessian and a population; the others get population 0 and no free energy
        (``RelaxedMode.free_energy`` None). At 10 kcal/mol and 300 K such a minimum would need a
        vibrational free energy 10 kcal/mol below the lowest's to reach e^−0 of its weight.
        None: every distinct minimum (6N calls each).
    """

    max_modes: int = 5
    starts_per_mode: int = 2
    min_population: float = 0.01
    pocket_radius: float = 5.0
    fmax: float = 0.02
    steps: int = 1000
    harmonic: bool = True
    delta: float = 0.01
    same_minimum_rmsd: float = 0.5
    harmonic_window: float | None = None

    def __post_init__(self):
        if self.max_modes < 1 or self.starts_per_mode < 1 or not 0 <= self.min_population < 1:
            raise ValueError("need max_modes >= 1, starts_per_mode >= 1 and 0 <= min_population < 1, got "
                             f"{self.max_modes}, {self.starts_per_mode}, {self.min_population}")
        if not (self.pocket_radius > 0 and self.fmax > 0 and self.steps >= 1 and self.delta > 0 and self.same_minimum_rmsd > 0):
            raise ValueError("pocket_radius, fmax, delta and same_minimum_rmsd must be > 0 and steps >= 1")
        if self.harmonic_window is not None and not self.harmonic_window >= 0:
            raise ValueError(f"harmonic_window must be >= 0 kcal/mol or None, got {self.harmonic_window}")


@dataclass
class RelaxedMode:
    """One model mode after relaxation.

    Attributes
    ----------
    mode : int
        The model's mode number (1 = most probable).
    model_population : float
    positions : numpy.ndarray
        (N, 3) Å, the relaxed ligand (Mol atom order).
    energy : float
        kcal/mol, relaxed energy relative to the lowest relaxed minimum.
    free_energy : float or None
        kcal/mol, E + F_vib(T) relative to the lowest (E alone when ``ModeEnergyConfig.harmonic``
        is False; None for a minimum above ``harmonic_window``).
    population : float
        The calculator's harmonic population of this minimum (0 for a duplicate).
    relaxation_rmsd : float
        Å, how far relaxation moved the representative (symmetry-aware heavy-atom RMSD).
    converged : bool
    steps : int
    n_imaginary : int or None
        Imaginary modes of the Hessian (> 0: a saddle, within ``fmax``); None without it.
    same_as : int or None
        The mode whose minimum this one reached first (its population is counted there).
    harmonic : bool
        Whether ``free_energy`` includes F_vib.
    anomalous : bool
        Every start of this mode relaxed into an artefact — the ligand's bonding changed
        (:func:`~digmat.ligand.physics.bond_anomalies`) or the calculator failed
        (:func:`~digmat.ligand.physics.energy_anomalies`): no minimum, population 0.
    """

    mode: int
    model_population: float
    positions: np.ndarray
    energy: float
    free_energy: float | None
    population: float
    relaxation_rmsd: float
    converged: bool
    steps: int
    n_imaginary: int | None = None
    same_as: int | None = None
    harmonic: bool = True
    anomalous: bool = False

    def as_dict(self) -> dict:
        out = asdict(self)
        out.pop("positions")
        return out


@dataclass
class ModeWeights:
    """Modes weighed by a calculator (:func:`weigh_modes`).

    Attributes
    ----------
    modes : list of RelaxedMode
        In the model's order.
    temperature : float
        K.
    calculator : str
    calls : int
        Calculator evaluations: those of every relaxation, 6N per Hessian.
    seconds : float
    pocket_atoms : int
        Atoms of the fixed pocket the ligand was relaxed in.
    model_coverage : float
        The model's total probability of the relaxed modes.
    harmonic : bool
    reference : dict or None
        The reference pose (e.g. the crystal's) weighed the same way: ``energy`` and
        ``free_energy`` (kcal/mol, relative to the modes' lowest), ``relaxation_rmsd`` (Å), and
        ``same_as``, the mode whose minimum it reaches within ``same_minimum_rmsd`` Å (None: a
        minimum no relaxed mode reached).
    """

    modes: list[RelaxedMode]
    temperature: float
    calculator: str
    calls: int
    seconds: float
    pocket_atoms: int
    model_coverage: float
    harmonic: bool
    reference: dict | None = None

    def as_dict(self) -> dict:
        return {"calculator": self.calculator, "temperature_K": self.temperature, "calls": self.calls,
                "seconds": round(self.seconds, 2), "pocket_atoms": self.pocket_atoms,
                "model_coverage": self.model_coverage, "harmonic": self.harmonic,
                "reference": self.reference, "modes": [m.as_dict() for m in self.modes]}


def weigh_modes(complex_atoms: Atoms, starts, model_populations, calculator, *, temperature: float,
                config: ModeEnergyConfig = ModeEnergyConfig(), rmsd=None, reference=None, bonds=None,
                name: str = "calculator") -> ModeWeights:
    """Relax each mode's starting poses with ``calculator`` and weigh the distinct minima.

    Parameters
    ----------
    complex_atoms : ase.Atoms
        A :func:`~digmat.ligand.physics.complex_atoms` structure (fixed pocket + ligand; the
        ligand's positions are replaced by each start's). Not modified.
    starts : sequence of array_like
        One (M_k, N, 3) Å array per mode, most probable mode first, its representative first:
        the poses relaxed for that mode (the first ``config.starts_per_mode``); the mode's minimum
        is the lowest one they reach. Only the first modes with ``model_populations >=
        config.min_population``, at most ``config.max_modes``, are relaxed.
    model_populations : array_like
        (K,) the model's population of each mode.
    calculator : ase.calculators.calculator.Calculator or callable
        Energies (eV) and forces (eV/Å) of the complex: a calculator, or a function returning a
        fresh one, called for every relaxation and every Hessian. Give a function for GFN-FF,
        whose calculator keeps state from the poses it scored before
        (:mod:`digmat.ligand.physics`).
    temperature : float
        K, > 0.
    rmsd : callable, optional
        ``rmsd(pose (N, 3), poses (M, N, 3)) -> (M,)`` Å (e.g. a symmetry-aware heavy-atom RMSD
        of :class:`~digmat.ligand.pose.PoseSpace`); default: plain all-atom RMSD.
    reference : array_like, optional
        (N, 3) Å, e.g. the crystal pose: relaxed and weighed the same way and reported in
        ``ModeWeights.reference`` (free energy relative to the modes' lowest, the mode whose
        minimum it reaches), without entering the populations.
    bonds : array_like of int, optional
        (B, 2) the ligand's bonds: a relaxation that changed them
        (:func:`~digmat.ligand.physics.bond_anomalies`, judged against the median of every
        relaxation of this call) is not a minimum, nor is one whose energy shows a calculator
        failure (:func:`~digmat.ligand.physics.energy_anomalies`, always checked); a mode whose
        starts all are is flagged ``anomalous`` and weighs nothing. None: no bond check.
    name : str
        The calculator's name, for the record.
    """
    pops = np.asarray(model_populations, float).reshape(-1)
    lig = ligand_slice(complex_atoms)
    n = lig.stop - lig.start
    starts = [np.asarray(x, float) for x in starts]
    starts = [x[None] if x.ndim == 2 else x for x in starts]
    if len(pops) != len(starts) or any(x.ndim != 3 or x.shape[1:] != (n, 3) or len(x) == 0 for x in starts):
        raise ValueError(f"need one non-empty (M, {n}, 3) array of starts per mode and one population each, "
                         f"got {len(starts)} and {len(pops)}")
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0 K, got {temperature}")
    if rmsd is None:
        def rmsd(a, b):
            return np.sqrt(((np.asarray(b) - a) ** 2).sum(-1).mean(-1))

    def distance(a, b) -> float:
        return float(np.ravel(rmsd(a, np.asarray(b)[None]))[0])

    chosen = [k for k in range(min(len(starts), config.max_modes)) if pops[k] >= config.min_population]
    if not chosen:
        raise ValueError(f"no mode has a model population >= {config.min_population}")
    from ase.calculators.calculator import BaseCalculator

    def fresh():
        return calculator if isinstance(calculator, BaseCalculator) else calculator()

    begin = time.perf_counter()
    indices = np.arange(lig.start, lig.stop)
    masses = complex_atoms.get_masses()[indices]
    calls = 0

    def relax(x) -> dict:
        nonlocal calls
        work = complex_atoms.copy()
        work.positions[lig] = x
        relaxed, info = relax_ligand(work, fresh(), fmax=config.fmax, steps=config.steps)
        calls += info["evaluations"]
        return {"atoms": relaxed, "x": relaxed.positions[lig].copy(), "e": info["energy"], "f": 0.0,
                "converged": info["converged"], "steps": info["steps"], "n_imag": None, "same_as": None}

    runs = {k: [relax(x) for x in starts[k][: config.starts_per_mode]] for k in chosen}
    ref_runs = [] if reference is None else [relax(np.asarray(reference, float).reshape(n, 3))]
    every = [r for k in chosen for r in runs[k]] + ref_runs
    flags = energy_anomalies([r["e"] * EV_TO_KCAL for r in every])
    if bonds is not None:
        flags |= bond_anomalies(np.array([r["x"] for r in every]), bonds)
    for r, bad in zip(every, flags):
        r["anomalous"] = bool(bad)

    def minimum(k_runs, first) -> dict:
        ok = [r for r in k_runs if not r["anomalous"]] or k_runs  # all anomalous: kept, flagged
        best = dict(min(ok, key=lambda r: r["e"]))
        best["moved"] = distance(first, best["x"])
        return best

    def harmonic(found: dict) -> None:
        nonlocal calls
        if config.harmonic:
            vib = vibrational_analysis(finite_difference_hessian(found["atoms"], fresh(), indices, delta=config.delta,
                                                                 batch_size=1), masses)
            found["f"], found["n_imag"] = harmonic_free_energy(vib, temperature), vib.n_imaginary
            calls += 6 * n

    raw = {}
    for k in chosen:
        found = minimum(runs[k], starts[k][0])
        found["same_as"] = None if found["anomalous"] else next(
            (j for j, prev in raw.items() if prev["same_as"] is None and not prev["anomalous"]
             and distance(found["x"], prev["x"]) < config.same_minimum_rmsd), None)
        raw[k] = found
    distinct = [k for k in chosen if raw[k]["same_as"] is None and not raw[k]["anomalous"]]
    if not distinct:
        raise ValueError("every relaxation changed the ligand's bonding; no minimum to weigh")
    e_min = min(raw[k]["e"] for k in distinct)
    window = np.inf if config.harmonic_window is None else config.harmonic_window / EV_TO_KCAL
    weighed = [k for k in distinct if raw[k]["e"] - e_min <= window]
    for k in weighed:
        harmonic(raw[k])
    g = np.array([raw[k]["e"] + raw[k]["f"] for k in weighed])
    g_min = g.min()
    share = dict(zip(weighed, boltzmann_probabilities(g, None, temperature)))
    modes = []
    for k in chosen:
        r = raw[k]
        key = r["same_as"] if r["same_as"] is not None else k
        owner = raw[key]
        modes.append(RelaxedMode(mode=k + 1, model_population=float(pops[k]), positions=r["x"],
                                 energy=float((r["e"] - e_min) * EV_TO_KCAL),
                                 free_energy=float((owner["e"] + owner["f"] - g_min) * EV_TO_KCAL) if key in weighed else None,
                                 population=float(share.get(k, 0.0)), relaxation_rmsd=r["moved"],
                                 converged=bool(r["converged"]), steps=int(r["steps"]), n_imaginary=r["n_imag"],
                                 same_as=None if r["same_as"] is None else r["same_as"] + 1,
                                 harmonic=bool(config.harmonic and owner["n_imag"] is not None),
                                 anomalous=r["anomalous"]))
    ref = None
    if reference is not None:
        found = minimum(ref_runs, np.asarray(reference, float).reshape(n, 3))
        harmonic(found)
        same = next((k for k in distinct if distance(found["x"], raw[k]["x"]) < config.same_minimum_rmsd), None)
        ref = {"energy": float((found["e"] - e_min) * EV_TO_KCAL),
               "free_energy": float((found["e"] + found["f"] - g_min) * EV_TO_KCAL),
               "relaxation_rmsd": found["moved"], "converged": bool(found["converged"]), "n_imaginary": found["n_imag"],
               "same_as": None if same is None else same + 1, "same_minimum_rmsd": config.same_minimum_rmsd,
               "anomalous": found["anomalous"]}
    return ModeWeights(modes, float(temperature), name, calls, time.perf_counter() - begin,
                       int(lig.start), float(pops[chosen].sum()), bool(config.harmonic), ref)


def weigh_clustered_modes(protein, mol, space, positions, energies, labels, modes, populations, calculator: str, *,
                          temperature: float, config: ModeEnergyConfig = ModeEnergyConfig(), reference=None) -> ModeWeights:
    """:func:`weigh_modes` on clustered poses of a ligand in ``protein``, with a fresh calculator per call.

    Each of ``modes`` (indices into ``labels``' clusters, in the order to weigh them) starts from
    its ``config.starts_per_mode`` lowest-``energies`` poses; the fixed pocket holds every residue
    within ``config.pocket_radius`` Å of a heavy atom of any start or of ``reference``.

    Parameters
    ----------
    protein : str or os.PathLike
        PDB/mmCIF path.
    mol : rdkit.Chem.Mol
        The ligand (explicit H).
    space : PoseSpace
        Its pose space (symmetry-aware RMSD).
    positions : array_like
        (S, N, 3) Å poses; ``energies`` (S,) order the starts within a mode (e.g. Vina, kcal/mol).
    labels : array_like of int
        (S,) each pose's cluster.
    modes : sequence of int
        Clusters to weigh; ``populations`` (len(modes),) their own populations.
    calculator : str
        A :data:`LIGAND_CALCULATORS` name.
    reference : array_like, optional
        (N, 3) Å pose weighed beside the modes (:func:`weigh_modes`).
    """
    from digmat.ligand.molecule import ligand_atoms, ligand_bonds
    from digmat.ligand.physics import complex_atoms
    from digmat.ligand.pocket import extract_pocket

    key = check_ligand_calculator(calculator)
    positions = np.asarray(positions, float)
    energies = np.asarray(energies, float).reshape(-1)
    labels = np.asarray(labels).reshape(-1)
    starts = []
    for k in modes:
        members = np.flatnonzero(labels == k)
        starts.append(positions[members[np.argsort(energies[members], kind="stable")[: config.starts_per_mode]]])
    points = starts + ([] if reference is None else [np.asarray(reference, float)[None]])
    pocket = extract_pocket(protein, np.concatenate([x[:, space.heavy].reshape(-1, 3) for x in points]),
                            radius=config.pocket_radius)
    base = complex_atoms(pocket, ligand_atoms(mol))
    return weigh_modes(base, starts, populations, lambda: ligand_calculator(key, base.info["charge"]),
                       temperature=temperature, config=config, reference=reference, bonds=ligand_bonds(mol),
                       rmsd=lambda x, others: space.rmsd(x, others)[0], name=key)


def _sample_arrays(labels, weights) -> tuple[np.ndarray, np.ndarray]:
    """(S,) labels and (S,) float weights, checked: one non-negative weight per label."""
    labels = np.asarray(labels).reshape(-1)
    w = np.asarray(weights, float).reshape(-1)
    if len(labels) != len(w) or (w < 0).any():
        raise ValueError(f"need one label and one non-negative weight per sample, got {len(labels)} and {len(w)}")
    return labels, w


def reweight_samples(labels, weights, mode_weights: ModeWeights) -> np.ndarray:
    """Sample weights whose mode totals are the calculator's populations.

    The modes' shapes come from the samples (e.g. a Vina ensemble's poses); how much each mode
    weighs comes from ``mode_weights`` (:func:`weigh_modes` on those modes). Each relaxed mode
    gets the population of the minimum it reached, shared between the modes that reached the
    same minimum in proportion to their sample weight; within a mode the samples keep their
    relative weights; samples of modes that were not relaxed get 0.

    Parameters
    ----------
    labels : array_like of int
        (S,) each sample's mode as an index into the starts given to :func:`weigh_modes`
        (0-based; −1 or any index not relaxed: a mode left out).
    weights : array_like
        (S,) the samples' own weights (≥ 0).
    mode_weights : ModeWeights

    Returns
    -------
    numpy.ndarray
        (S,) weights summing to 1.
    """
    labels, w = _sample_arrays(labels, weights)
    owner = {m.mode - 1: (m.same_as or m.mode) - 1 for m in mode_weights.modes}
    population = {m.mode - 1: m.population for m in mode_weights.modes}
    mass = {k: float(w[labels == k].sum()) for k in owner}
    group_mass = {}
    for k, o in owner.items():
        group_mass[o] = group_mass.get(o, 0.0) + mass[k]
    # each mode's share of its minimum, in proportion to its sample weight
    share = {k: population[o] * mass[k] / group_mass[o] for k, o in owner.items() if group_mass[o] > 0}
    return spread_populations(labels, w, share)


def spread_populations(labels, weights, populations: dict) -> np.ndarray:
    """Sample weights whose mode totals are ``populations``; within a mode the samples keep their
    relative ``weights``, and samples of a mode not in ``populations`` get 0.

    Parameters
    ----------
    labels : array_like of int
        (S,) each sample's mode.
    weights : array_like
        (S,) the samples' own weights (≥ 0).
    populations : dict
        mode → population (≥ 0).

    Returns
    -------
    numpy.ndarray
        (S,) weights summing to 1.
    """
    labels, w = _sample_arrays(labels, weights)
    out = np.zeros_like(w)
    for k, p in populations.items():
        inside = labels == k
        mass = w[inside].sum()
        if mass > 0:
            out[inside] = w[inside] * p / mass
    total = out.sum()
    if not total > 0:
        raise ValueError("no sample lies in a relaxed mode with a population > 0")
    return out / total
