"""Binding-mode populations by mining minima: many relaxations per mode, every distinct minimum counted.

:func:`~digmat.ligand.mode_energies.weigh_modes` gives each mode the *lowest* minimum that a few of
its poses relax to. On a rugged landscape that is not converged in the number of starts: on
1uou, six starts instead of two moved a mode's minimum by 6.7 kcal/mol, and on 1s3v two and six
starts flip a 0.09 kcal/mol tie (``docs/ligand.md`` §8). :func:`mine_minima` is the
harmonic-superposition ("mining minima") estimate done with a convergence check:

- many starts per mode, drawn from two independent halves of the sampling (e.g. the even and the
  odd chains of a tempering run), each relaxed with a fresh calculator in one fixed pocket;
- the relaxed poses are merged into distinct minima (symmetry-aware heavy-atom RMSD below
  ``same_minimum_rmsd``, lowest energy first), each belonging to the mode of its lowest start;
- every distinct minimum within ``harmonic_window`` of the lowest gets its harmonic free energy
  ``G_i = E_i + F_vib,i(T)`` and the mode's population is ``Σ_{i ∈ mode} e^{−G_i/k_BT} / Z``;
- the same populations from the minima each half found on its own; the largest difference between
  the halves is the convergence figure (the issue asks ≤ 0.1 per mode).

Every relaxation and free energy is kept in a resumable cache, so a run of hours survives
interruption.

Units: Å, eV (calculator), kcal/mol (reported), K.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from ase import Atoms

from digmat.adsorption.thermo import finite_difference_hessian, harmonic_free_energy, vibrational_analysis
from digmat.ligand.mode_energies import EV_TO_KCAL, ModeEnergyConfig
from digmat.ligand.physics import bond_anomalies, energy_anomalies, ligand_slice, relax_ligand

__all__ = ["MinedMinima", "mine_minima", "minima_populations"]


@dataclass
class MinedMinima:
    """Distinct minima of a set of relaxations and the modes' populations (:func:`mine_minima`).

    Attributes
    ----------
    positions : numpy.ndarray
        (D, N, 3) Å, each distinct minimum (its lowest relaxation), lowest energy first.
    energy : numpy.ndarray
        (D,) kcal/mol relative to the lowest.
    free_energy : numpy.ndarray
        (D,) kcal/mol, E + F_vib(T) relative to the lowest weighed; NaN above ``harmonic_window``.
    mode : numpy.ndarray
        (D,) int, the mode of each minimum's lowest start.
    halves : numpy.ndarray
        (D, 2) bool, whether some start of half 0 / 1 reached it.
    starts : numpy.ndarray
        (D,) int, how many starts reached it.
    n_imaginary : numpy.ndarray
        (D,) int, imaginary modes of its Hessian (−1 where none was computed).
    populations : numpy.ndarray
        (K,) each mode's population from every minimum.
    half_populations : numpy.ndarray
        (2, K) the same from the minima each half reached.
    start_energy : numpy.ndarray
        (S,) kcal/mol, every start's relaxed energy relative to the lowest.
    start_minimum : numpy.ndarray
        (S,) int, the distinct minimum each start reached (−1: an anomalous relaxation).
    start_converged : numpy.ndarray
        (S,) int, whether each relaxation reached ``config.fmax`` (1) or stopped at
        ``config.steps`` iterations (0); −1 where a cache written before this was recorded holds it.
    anomalous : numpy.ndarray
        (S,) bool, relaxations that changed the ligand's bonding
        (:func:`~digmat.ligand.physics.bond_anomalies`) or report an impossible energy
        (:func:`~digmat.ligand.physics.energy_anomalies`); they form no minimum.
    lowest_energy_ev : float
        eV, the lowest minimum's absolute energy (what the relative energies are measured from).
    calls : int
        Calculator evaluations (relaxations and Hessians, cached ones included).
    seconds : float
        Wall time of this call (cached work not counted).
    temperature : float
        K.
    """

    positions: np.ndarray
    energy: np.ndarray
    free_energy: np.ndarray
    mode: np.ndarray
    halves: np.ndarray
    starts: np.ndarray
    n_imaginary: np.ndarray
    populations: np.ndarray
    half_populations: np.ndarray
    start_energy: np.ndarray
    start_minimum: np.ndarray
    start_converged: np.ndarray
    anomalous: np.ndarray
    lowest_energy_ev: float
    calls: int
    seconds: float
    temperature: float

    @property
    def max_half_difference(self) -> float:
        """Largest |p_half0 − p_half1| over the modes."""
        return float(np.abs(self.half_populations[0] - self.half_populations[1]).max())

    def as_dict(self) -> dict:
        """JSON-ready summary: per-minimum rows (no coordinates) and the populations."""
        rows = [{"mode": int(self.mode[i]), "energy": float(self.energy[i]),
                 "free_energy": None if np.isnan(self.free_energy[i]) else float(self.free_energy[i]),
                 "starts": int(self.starts[i]), "halves": [bool(h) for h in self.halves[i]],
                 "n_imaginary": None if self.n_imaginary[i] < 0 else int(self.n_imaginary[i])}
                for i in range(len(self.energy))]
        return {"temperature_K": self.temperature, "calls": self.calls, "seconds": round(self.seconds, 1),
                "distinct_minima": len(rows), "anomalous_starts": int(self.anomalous.sum()),
                "unconverged_starts": int((self.start_converged == 0).sum()),
                "starts_of_unknown_convergence": int((self.start_converged < 0).sum()),
                "max_half_difference": self.max_half_difference,
                "populations": [float(p) for p in self.populations],
                "half_populations": [[float(p) for p in h] for h in self.half_populations], "minima": rows}


def minima_populations(free_energy, mode, halves, num_modes: int, temperature: float) -> tuple[np.ndarray, np.ndarray]:
    """Mode populations from distinct minima: all of them, and each half's own.

    Parameters
    ----------
    free_energy : array_like
        (D,) kcal/mol; NaN: not weighed (population 0).
    mode : array_like of int
        (D,) each minimum's mode, in [0, num_modes).
    halves : array_like of bool
        (D, 2) which halves reached each minimum.
    num_modes : int
    temperature : float
        K.

    Returns
    -------
    (numpy.ndarray, numpy.ndarray)
        (K,) and (2, K); a half that reached no weighed minimum gets zeros.
    """
    from digmat.ligand.tempering import KB_KCAL

    g = np.asarray(free_energy, float)
    mode = np.asarray(mode, int)
    halves = np.asarray(halves, bool).reshape(len(g), 2)
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0 K, got {temperature}")
    ok = ~np.isnan(g)
    boltz = np.zeros_like(g)
    if ok.any():
        boltz[ok] = np.exp(-(g[ok] - g[ok].min()) / (KB_KCAL * temperature))

    def share(keep) -> np.ndarray:
        out = np.bincount(mode[keep], weights=boltz[keep], minlength=num_modes).astype(float)
        return out / out.sum() if out.sum() > 0 else out

    return share(np.ones(len(g), bool)), np.stack([share(halves[:, h]) for h in (0, 1)])


_CACHED = ("start", "x", "energy", "calls", "fvib", "n_imag", "hess_calls")
#: Cache entries added later, and what a cache written before them holds instead.
_ADDED = {"converged": -1}


def _pocket_key(complex_atoms: Atoms) -> np.ndarray:
    """(P, 4) the fixed pocket's atomic numbers and positions: relaxations compare only in one pocket."""
    pocket = complex_atoms[: ligand_slice(complex_atoms).start]
    return np.column_stack([pocket.numbers, pocket.positions]).astype(float)


def _load_cache(path: Path | None, starts: np.ndarray, temperature: float, pocket: np.ndarray) -> tuple[dict, dict]:
    """(this run's entries, the cache's other starts): every cached start with the same coordinates
    (to 1e-6 Å) is reused, so a run with more or other starts keeps the earlier relaxations."""
    num, n = starts.shape[:2]
    mine = {"start": starts.copy(), "x": np.zeros((num, n, 3)), "energy": np.full(num, np.nan),
            "calls": np.zeros(num, int), "fvib": np.full(num, np.nan), "n_imag": np.full(num, -1),
            "hess_calls": np.zeros(num, int), "converged": np.full(num, _ADDED["converged"])}
    empty = {k: v[:0] for k, v in mine.items()}
    if path is None or not path.is_file():
        return mine, empty
    with np.load(path) as data:
        if "pocket" not in data.files:
            raise ValueError(f"{path} has no record of its pocket (an older cache): remove it or use another")
        found = {k: data[k] for k in _CACHED}
        found.update({k: data[k] if k in data.files else np.full(len(found["start"]), value) for k, value in _ADDED.items()})
        cached_t = float(data["temperature"])
        cached_pocket = data["pocket"]
    if found["x"].shape[1:] != (n, 3):
        raise ValueError(f"{path} caches relaxations of a {found['x'].shape[1]}-atom ligand, this run has {n} atoms: "
                         "remove it or use another cache")
    if cached_pocket.shape != pocket.shape or not np.allclose(cached_pocket, pocket, atol=1e-6):
        raise ValueError(f"{path} caches relaxations in another pocket ({len(cached_pocket)} atoms; this run's: "
                         f"{len(pocket)}): use another cache")
    if cached_t != float(temperature):
        raise ValueError(f"{path} caches free energies at {cached_t:g} K, this run asks {temperature:g} K: "
                         "use another cache")
    used = np.zeros(len(found["start"]), bool)
    flat = found["start"].reshape(len(used), -1)
    for s in range(num):
        if not len(used):
            break
        gap = np.abs(flat - starts[s].reshape(-1)).max(axis=1)
        j = int(np.argmin(gap))
        if gap[j] <= 1e-6 and not used[j]:
            used[j] = True
            for k in mine:
                if k != "start":
                    mine[k][s] = found[k][j]
    return mine, {k: v[~used] for k, v in found.items()}


def _save_cache(path: Path | None, cache: dict, others: dict, temperature: float, pocket: np.ndarray) -> None:
    if path is not None:
        from digmat.files import atomic_write_bytes

        merged = {k: np.concatenate([cache[k], others[k]]) for k in cache}
        atomic_write_bytes(path, lambda h: np.savez(h, temperature=np.array(float(temperature)), pocket=pocket, **merged))


def mine_minima(complex_atoms: Atoms, starts, modes, halves, calculator, *, temperature: float, num_modes: int | None = None,
                config: ModeEnergyConfig = ModeEnergyConfig(), rmsd=None, bonds=None,
                cache: str | os.PathLike | None = None, log=None) -> MinedMinima:
    """Relax every start, merge the minima, weigh them and give each mode its population.

    Parameters
    ----------
    complex_atoms : ase.Atoms
        A :func:`~digmat.ligand.physics.complex_atoms` structure (fixed pocket + ligand). Not modified.
    starts : array_like
        (S, N, 3) Å ligand poses (Mol atom order).
    modes : array_like of int
        (S,) each start's mode, in [0, num_modes).
    halves : array_like of int
        (S,) 0 or 1: the independent half of the sampling each start came from.
    calculator : callable
        Returns a fresh ASE calculator (called for every relaxation and every Hessian).
    temperature : float
        K.
    num_modes : int, optional
        K (default: the largest mode + 1).
    config : ModeEnergyConfig
        ``fmax``, ``steps``, ``harmonic``, ``delta``, ``same_minimum_rmsd`` and ``harmonic_window``
        are used (``harmonic_window`` None weighs every distinct minimum).
    rmsd : callable, optional
        ``rmsd(pose (N, 3), poses (M, N, 3)) -> (M,)`` Å; default plain all-atom RMSD.
    bonds : array_like of int, optional
        (B, 2) the ligand's bonds: relaxations that changed them are dropped
        (:func:`~digmat.ligand.physics.bond_anomalies`). None: no check.
    cache : path, optional
        ``.npz`` of every finished relaxation and Hessian, rewritten after each; a rerun resumes
        from it, and a run with more or other starts reuses every start it has already relaxed
        (matched by coordinates) and keeps the others.
    log : callable, optional
        Progress lines.
    """
    x0 = np.asarray(starts, float)
    lig = ligand_slice(complex_atoms)
    n = lig.stop - lig.start
    if x0.ndim != 3 or x0.shape[1:] != (n, 3) or not len(x0):
        raise ValueError(f"starts must be (S, {n}, 3), got {x0.shape}")
    modes = np.asarray(modes, int).reshape(-1)
    halves = np.asarray(halves, int).reshape(-1)
    if len(modes) != len(x0) or len(halves) != len(x0) or not np.isin(halves, (0, 1)).all() or (modes < 0).any():
        raise ValueError("need one mode (>= 0) and one half (0 or 1) per start")
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0 K, got {temperature}")
    k = int(modes.max()) + 1 if num_modes is None else int(num_modes)
    if modes.max() >= k:
        raise ValueError(f"a start's mode {modes.max()} is not below num_modes {k}")
    if rmsd is None:
        def rmsd(a, b):
            return np.sqrt(((np.asarray(b) - a) ** 2).sum(-1).mean(-1))
    path = None if cache is None else Path(cache)
    pocket = _pocket_key(complex_atoms)
    c, others = _load_cache(path, x0, temperature, pocket)
    begin = time.perf_counter()
    for s in range(len(x0)):
        if not np.isnan(c["energy"][s]):
            continue
        work = complex_atoms.copy()
        work.positions[lig] = x0[s]
        relaxed, info = relax_ligand(work, calculator(), fmax=config.fmax, steps=config.steps)
        c["x"][s], c["energy"][s], c["calls"][s] = relaxed.positions[lig], info["energy"], info["evaluations"]
        c["converged"][s] = int(info["converged"])
        _save_cache(path, c, others, temperature, pocket)
        if log is not None:
            log(f"start {s + 1}/{len(x0)} (mode {modes[s] + 1}, half {halves[s]}): "
                f"{info['energy'] * EV_TO_KCAL:.2f} kcal/mol, {info['evaluations']} calls")
    anomalous = energy_anomalies(c["energy"] * EV_TO_KCAL)
    if bonds is not None:
        anomalous |= bond_anomalies(c["x"], bonds)
    if anomalous.all():
        raise ValueError("every relaxation changed the ligand's bonding; no minimum to weigh")
    # distinct minima, lowest first; each start joins the first close one
    order = [s for s in np.argsort(c["energy"], kind="stable") if not anomalous[s]]
    reps: list[int] = []
    start_minimum = np.full(len(x0), -1)
    for s in order:
        near = [j for j, r in enumerate(reps) if float(np.ravel(rmsd(c["x"][s], c["x"][r][None]))[0]) < config.same_minimum_rmsd]
        if near:
            start_minimum[s] = near[0]
        else:
            start_minimum[s] = len(reps)
            reps.append(int(s))
    reps_arr = np.array(reps)
    e = c["energy"][reps_arr]
    window = np.inf if config.harmonic_window is None else config.harmonic_window / EV_TO_KCAL
    indices = np.arange(lig.start, lig.stop)
    masses = complex_atoms.get_masses()[indices]
    for j, s in enumerate(reps):
        if e[j] - e.min() > window or not np.isnan(c["fvib"][s]):
            continue
        if config.harmonic:
            atoms = complex_atoms.copy()
            atoms.positions[lig] = c["x"][s]
            vib = vibrational_analysis(finite_difference_hessian(atoms, calculator(), indices, delta=config.delta,
                                                                 batch_size=1), masses)
            c["fvib"][s], c["n_imag"][s], c["hess_calls"][s] = harmonic_free_energy(vib, temperature), vib.n_imaginary, 6 * n
        else:
            c["fvib"][s] = 0.0
        _save_cache(path, c, others, temperature, pocket)
        if log is not None:
            log(f"minimum {j + 1}/{len(reps)}: E {(e[j] - e.min()) * EV_TO_KCAL:.2f} kcal/mol, harmonic free energy done")
    g = np.where(np.isnan(c["fvib"][reps_arr]) | (e - e.min() > window), np.nan, e + c["fvib"][reps_arr]) * EV_TO_KCAL
    g = g - np.nanmin(g)
    mode = modes[reps_arr]  # each minimum's first start is its lowest
    reached = np.zeros((len(reps), 2), bool)
    ok = start_minimum >= 0
    reached[start_minimum[ok], halves[ok]] = True
    pops, half_pops = minima_populations(g, mode, reached, k, temperature)
    return MinedMinima(positions=c["x"][reps_arr].copy(), energy=(e - e.min()) * EV_TO_KCAL, free_energy=g, mode=mode,
                       halves=reached, starts=np.bincount(start_minimum[ok], minlength=len(reps)),
                       n_imaginary=c["n_imag"][reps_arr].astype(int), populations=pops, half_populations=half_pops,
                       start_energy=(c["energy"] - e.min()) * EV_TO_KCAL, start_minimum=start_minimum,
                       start_converged=c["converged"].copy(),
                       anomalous=anomalous, lowest_energy_ev=float(e.min()), calls=int(c["calls"].sum() + c["hess_calls"].sum()), seconds=time.perf_counter() - begin,
                       temperature=float(temperature))
