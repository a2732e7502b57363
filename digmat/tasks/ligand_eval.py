"""Scores of a ligand model on one complex against its crystal pose, PoseBusters and a reference ensemble.

:func:`evaluate_complex` draws poses with :func:`~digmat.tasks.ligand_sampling.sample_poses` and
reports what issue-level targets ask for:

* the most probable mode's and the top-5 modes' symmetry-aware RMSD to the crystal pose
  (success: < 2 Å);
* the share of sampled poses that pass every PoseBusters check (a random subset of ``judge``),
  beside the share of reference poses that do (the exact ensemble's own rate);
* total variation between the model's and the reference's populations over the reference's
  modes (poses near no reference mode form one extra bin);
* ligand-conformer coverage COV-R: the share of reference conformers (drawn by weight) that
  have a sampled conformer within ``cov_threshold`` Å heavy-atom RMSD after optimal
  superposition and over the graph's automorphisms, and MAT-R, the mean of those nearest RMSDs.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from digmat.tasks.ligand_data import read_mode_molecules, reference_mode_populations, reference_weights
from digmat.tasks.ligand_sampling import PoseEnsemble, reference_populations, sample_poses, total_variation

__all__ = ["aligned_rmsd", "conformer_coverage", "evaluate_complex", "importance_figures", "read_reference_modes", "reference_poses", "reweight_figures",
           "reweighted_populations"]


def aligned_rmsd(space, a, b) -> np.ndarray:
    """Heavy-atom RMSD (Å) after optimal superposition, minimised over automorphisms: a (A, N, 3),
    b (B, N, 3) -> (A, B)."""
    ha = torch.as_tensor(np.asarray(a, float)[:, space.heavy])
    hb = torch.as_tensor(np.asarray(b, float)[:, space.heavy])
    ha = ha - ha.mean(1, keepdim=True)
    hb = hb - hb.mean(1, keepdim=True)
    best = torch.full((len(ha), len(hb)), float("inf"), dtype=ha.dtype)
    for perm in space.automorphisms:
        pa = ha[:, torch.as_tensor(perm)]  # (A, n, 3)
        h = torch.einsum("ani,bnj->abij", pa, hb)
        u, s, vt = torch.linalg.svd(h)
        sign = torch.sign(torch.linalg.det(u @ vt))
        s = s.clone()
        s[..., -1] = s[..., -1] * sign
        n = pa.shape[1]
        sq = ((pa**2).sum((1, 2))[:, None] + (hb**2).sum((1, 2))[None] - 2 * s.sum(-1)) / n
        best = torch.minimum(best, sq.clamp_min(0.0))
    return best.sqrt().numpy()


def conformer_coverage(space, reference, samples, *, threshold: float = 0.75) -> tuple[float, float]:
    """(COV-R, MAT-R Å): share of ``reference`` conformers (R, N, 3) with a ``samples`` conformer
    (S, N, 3) within ``threshold`` Å aligned RMSD, and the mean nearest aligned RMSD."""
    nearest = np.concatenate([aligned_rmsd(space, chunk, samples).min(1) for chunk in np.array_split(reference, max(1, len(reference) // 64))])
    return float((nearest <= threshold).mean()), float(nearest.mean())


def read_reference_modes(folder: str | os.PathLike, weights: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Representatives (K, N, 3) Å of a reference's ``modes.sdf`` and their populations (K,)
    (with ``weights``, a calculator name: as that calculator weighed them,
    :func:`~digmat.tasks.ligand_data.reference_mode_populations`)."""
    mols = read_mode_molecules(folder)
    pops = reference_mode_populations(folder, weights, molecules=mols)
    if len(pops) != len(mols):
        raise ValueError(f"{folder}: {len(pops)} mode populations for {len(mols)} modes in modes.sdf")
    return np.array([m.GetConformer().GetPositions() for m in mols]), pops


def _reference_draw(folder: str | os.PathLike, num: int, seed: int,
                    weights: str | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(t, R, τ) of ``num`` poses drawn by weight from a reference's ``samples.npz``."""
    data = np.load(Path(folder) / "samples.npz")
    w = reference_weights(folder, weights).reshape(-1).astype(float)
    pick = np.random.default_rng(seed).choice(len(w), size=num, p=w / w.sum())
    return tuple(torch.as_tensor(data[k].reshape(len(w), *data[k].shape[2:])[pick], dtype=torch.float64)
                 for k in ("t", "rotation", "tau"))


def reference_poses(system, folder: str | os.PathLike, num: int, seed: int = 0, weights: str | None = None) -> np.ndarray:
    """``num`` poses (num, N, 3) Å drawn by weight from a reference's ``samples.npz`` (``weights``:
    :func:`~digmat.tasks.ligand_data.reference_weights`)."""
    return system.pose.positions(*_reference_draw(folder, num, seed, weights)).numpy()


def _posebusters_figures(system, positions, protein) -> dict:
    from digmat.ligand.checks import mols_at, posebusters_checks

    checks = posebusters_checks(mols_at(system.mol, positions), protein)
    failed: dict[str, int] = {}
    for c in checks:
        for name, ok in c.items():
            if not ok and name != "all":
                failed[name] = failed.get(name, 0) + 1
    return {"judged": len(checks), "pass_fraction": float(np.mean([c["all"] for c in checks])),
            "failures": dict(sorted(failed.items(), key=lambda kv: -kv[1]))}


def evaluate_complex(model, found, *, reference: str | os.PathLike | None = None, num: int = 256, steps: int = 200,
                     grid_power: float = 1.0, refine_steps: int = 0, minimize_steps: int = 0, seed: int = 0,
                     judge: int = 128,
                     judge_reference: int = 0, cov_reference: int = 300, cov_threshold: float = 0.75,
                     reweight: str | None = None, reweight_config=None, reference_weights: str | None = None,
                     progress=None) -> tuple[dict, PoseEnsemble]:
    """Sample ``num`` poses of ``found`` (:class:`~digmat.tasks.ligand_data.LigandComplex`) and score them.

    ``reference`` is the complex's reference folder (``modes.sdf``, ``samples.npz``); ``judge`` poses
    (random, seeded; 0: none) go through PoseBusters, and ``judge_reference`` reference poses (drawn
    by weight) too — the baseline: how often the exact Boltzmann ensemble itself passes. With
    ``judge``, the five most probable modes' representatives are judged as well, and
    ``top1_valid_within_2A`` / ``top5_valid_within_2A`` count a mode only when its representative
    also passes (PoseBusters' own criterion). ``refine_steps`` and ``minimize_steps``: see
    :func:`~digmat.tasks.ligand_sampling.sample_poses`.
    ``reference_weights`` (a calculator name) scores against the reference's modes as that
    calculator weighed them (``weights_<name>.npz``/``.json``) instead of its own weights.
    ``reweight`` (a :data:`~digmat.ligand.LIGAND_CALCULATORS` name) weighs the most populated modes
    and the crystal pose with that calculator (:meth:`PoseEnsemble.reweight`) and adds
    ``reweight``: the reweighted most probable mode's RMSD to the crystal, top-1 / top-5 within
    2 Å by reweighted population, the relaxed crystal pose's free energy relative to the modes'
    lowest (kcal/mol; negative: below every relaxed mode), calls and seconds; with ``reference``
    too, ``reweight["tv_to_reference"]``: the calculator's populations, each at its relaxed
    minimum (:func:`reweighted_populations`), against the reference's. Returns (figures, ensemble).
    """
    system = found.system
    ensemble = sample_poses(model, system, num, box_radius=found.box_radius, steps=steps, grid_power=grid_power,
                            refine_steps=refine_steps, minimize_steps=minimize_steps, seed=seed, progress=progress)
    modes = ensemble.modes()
    rmsd = modes.rmsd_to(system.pose, found.crystal)
    out = {"num_samples": num, "steps": steps, "grid_power": grid_power, "refinement": ensemble.refinement,
           "minimization": ensemble.minimization, "seconds": round(ensemble.seconds, 2),
           "seconds_per_256_poses": round(ensemble.seconds * 256 / num, 2), "in_box_fraction": float(ensemble.in_box.mean()),
           "clash_free_fraction": ensemble.clash_free_fraction,
           "num_modes": int(len(modes.populations)),
           "top_modes": [{"population": float(p), "rmsd_to_crystal_A": float(r), "vina_energy_min": float(e)}
                         for p, r, e in zip(modes.populations[:5], rmsd[:5], modes.energy_min[:5])],
           "top1_rmsd_A": float(rmsd[0]), "top1_within_2A": bool(rmsd[0] < 2.0),
           "top5_within_2A": bool((rmsd[:5] < 2.0).any()),
           "fraction_poses_within_2A": float((system.pose.rmsd(ensemble.positions, found.crystal)[:, 0] < 2.0).mean())}
    if judge:
        from digmat.ligand.checks import mols_at, posebusters_checks

        pick = np.sort(np.random.default_rng(seed).choice(num, size=min(judge, num), replace=False))
        pb = _posebusters_figures(system, ensemble.positions[pick], found.protein)
        out["posebusters_judged"], out["posebusters_pass_fraction"] = pb["judged"], pb["pass_fraction"]
        out["posebusters_failures"] = pb["failures"]
        top = min(5, len(modes.populations))
        valid = [c["all"] for c in posebusters_checks(mols_at(system.mol, modes.representatives[:top]), found.protein)]
        for row, ok in zip(out["top_modes"], valid):
            row["posebusters_pass"] = bool(ok)
        out["top1_valid_within_2A"] = bool(rmsd[0] < 2.0 and valid[0])
        out["top5_valid_within_2A"] = bool(any(r < 2.0 and ok for r, ok in zip(rmsd[:top], valid)))
    if reference is not None:
        folder = Path(reference)
        reps, pops = read_reference_modes(folder, reference_weights)
        p = reference_populations(system, ensemble.positions, reps)
        q = np.append(pops / pops.sum(), 0.0)
        out["tv_to_reference"] = total_variation(p, q)
        out["reference_weights"] = reference_weights or "own"
        out["reference_top_modes"] = [{"reference": float(q[k]), "model": float(p[k])} for k in range(min(5, len(reps)))]
        out["model_outside_reference_modes"] = float(p[-1])
        if judge_reference:
            out["posebusters_reference"] = _posebusters_figures(
                system, reference_poses(system, folder, judge_reference, seed, reference_weights), found.protein)
        ref_conf = system.pose.conformers(_reference_draw(folder, cov_reference, seed, reference_weights)[2]).numpy()
        ours = system.pose.conformers(system.to_state(ensemble.positions).x[:, 3:]).numpy()
        out["cov_r"], out["mat_r_A"] = conformer_coverage(system.pose, ref_conf, ours, threshold=cov_threshold)
    if reweight is not None:
        out["reweight"] = reweight_figures(ensemble, found, reweight, rmsd, config=reweight_config)
        if reference is not None:
            p_rw = reweighted_populations(ensemble, reps)
            out["reweight"]["tv_to_reference"] = total_variation(p_rw, q)
            out["reweight"]["reference_top_modes"] = [{"reference": float(q[k]), "reweighted": float(p_rw[k])}
                                                      for k in range(min(5, len(reps)))]
    return out, ensemble


def reweighted_populations(ensemble: PoseEnsemble, representatives, *, cutoff: float = 2.0) -> np.ndarray:
    """The calculator's populations of a weighed ensemble, binned against a reference's modes.

    A population belongs to a minimum: each distinct relaxed minimum (``ensemble.weights``, from
    :meth:`PoseEnsemble.reweight`) puts its population in the bin of the nearest of the K
    ``representatives`` (K, N, 3) Å within ``cutoff`` Å symmetry-aware RMSD of its relaxed pose,
    or in the last bin, near none (:func:`~digmat.tasks.ligand_sampling.reference_populations`).
    (Spreading it over the samples of the model's 2 Å mode instead would move it into reference
    modes that the calculator puts elsewhere, where a model mode spans two of them.) Modes not
    relaxed hold nothing. Returns (K + 1,), summing to 1.
    """
    weights = ensemble.weights
    if weights is None:
        raise ValueError("the ensemble has not been weighed: call its reweight() first")
    held = [m for m in weights.modes if m.population > 0]
    if not held:
        raise ValueError("no relaxed mode holds any population")
    return reference_populations(ensemble.system, np.array([m.positions for m in held]), representatives,
                                 cutoff=cutoff, weights=[m.population for m in held])


def reweight_figures(ensemble: PoseEnsemble, found, calculator: str, rmsd: np.ndarray, *, config=None) -> dict:
    """The modes of ``ensemble`` weighed by ``calculator`` against ``found``'s crystal pose.

    ``rmsd`` is each model mode's RMSD to the crystal (Å, shape (K,), most probable mode first);
    the reweighted top modes are ranked by the calculator's population (see :func:`evaluate_complex`);
    ``relaxed_rmsd_to_crystal_A`` / ``top1_relaxed_rmsd_A``: the relaxed minimum's own RMSD.
    ``config`` (:class:`~digmat.ligand.ModeEnergyConfig`): modes and starts per mode relaxed.
    """
    from digmat.ligand import ModeEnergyConfig

    config = config or ModeEnergyConfig()
    weights = ensemble.reweight(found.protein, calculator, reference=found.crystal, config=config)
    order = sorted(weights.modes, key=lambda m: -m.population)
    top = [m.mode for m in order[:5] if m.population > 0]

    def relaxed_rmsd(m) -> float:  # the calculator's minimum itself, against the crystal
        return float(ensemble.system.pose.rmsd(m.positions, found.crystal)[0, 0])
    crystal = weights.reference or {}
    return {"calculator": weights.calculator, "calls": weights.calls, "seconds": round(weights.seconds, 1),
            "modes_relaxed": config.max_modes, "starts_per_mode": config.starts_per_mode,
            "model_coverage": float(weights.model_coverage),
            "modes": [{"mode": m.mode, "model_population": float(m.model_population), "population": float(m.population),
                       "free_energy_kcal_mol": m.free_energy, "rmsd_to_crystal_A": float(rmsd[m.mode - 1]),
                       "relaxed_rmsd_to_crystal_A": relaxed_rmsd(m)}
                      for m in weights.modes],
            "top1_mode": top[0] if top else None,
            "top1_rmsd_A": float(rmsd[top[0] - 1]) if top else None,
            "top1_within_2A": bool(top and rmsd[top[0] - 1] < 2.0),
            "top1_relaxed_rmsd_A": relaxed_rmsd(order[0]) if top else None,
            "top5_within_2A": bool(any(rmsd[k - 1] < 2.0 for k in top)),
            "crystal_free_energy_kcal_mol": crystal.get("free_energy"),
            "crystal_same_as_mode": crystal.get("same_as"),
            "crystal": weights.reference}


def importance_figures(model, ensemble: PoseEnsemble, *, steps: int = 100, temperature: float = 300.0,
                       reference: str | os.PathLike | None = None) -> dict:
    """Raw model samples weighed towards Vina's Boltzmann distribution by the model's own density.

    Each pose's log-density (:meth:`PoseEnsemble.compute_log_density`, ``steps`` ODE steps) and
    Vina energy (inter + intra) give w ∝ exp(−E/k_BT) / p_model (poses outside the box: 0;
    :func:`~digmat.tasks.ligand_density.boltzmann_importance_weights`). Valid for raw samples only:
    the ensemble must be neither refined nor minimised. With ``reference`` (a folder), the
    populations over its modes as Vina weighed them (its own weights, the same target) before
    and after weighting, and their total variation to it.
    """
    from time import perf_counter

    from digmat.tasks.ligand_density import boltzmann_importance_weights

    if ensemble.refinement is not None or ensemble.minimization is not None:
        raise ValueError("importance weights need the model's raw samples: sample with refine_steps=0 and minimize_steps=0")
    start = perf_counter()
    log_p = ensemble.compute_log_density(model, steps=steps)
    seconds = perf_counter() - start
    w, ess = boltzmann_importance_weights(log_p, ensemble.energy, temperature, keep=ensemble.in_box)
    out = {"ode_steps": steps, "seconds": round(seconds, 1), "log_p_median": float(np.median(log_p)),
           "effective_sample_size": ess, "largest_weight": float(w.max())}
    if reference is not None:
        reps, pops = read_reference_modes(reference)
        q = np.append(pops / pops.sum(), 0.0)
        p = reference_populations(ensemble.system, ensemble.positions, reps)
        p_w = reference_populations(ensemble.system, ensemble.positions, reps, weights=w)
        out.update(tv_model_to_vina_reference=total_variation(p, q), tv_weighted_to_vina_reference=total_variation(p_w, q),
                   top_modes=[{"reference": float(q[k]), "model": float(p[k]), "weighted": float(p_w[k])}
                              for k in range(min(5, len(reps)))])
    return out
