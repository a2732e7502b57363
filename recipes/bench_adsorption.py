"""Benchmark the adsorption model against reference site searches on held-out systems.

For every reference result (``digmat reference`` / ``make_adsorption_corpus.py`` output) it
samples ``-n`` configurations at 300 K and at 1200 K with ``sample_adsorbates`` and reports:

- ``coverage_1200K``: share of the reference minima (saddles excluded) that some 1200 K sample
  reaches — the binding atom within 0.5 Å in-plane (modulo the lattice) of the minimum or of
  one of its symmetry images;
- ``tv_300K`` / ``tv_1200K``: total-variation distance between the sampled and the reference
  distributions, per minimum (each configuration assigned to the minimum whose binding-atom
  image is nearest in 3-D, unassigned beyond 1 Å, a category of its own) and per site kind
  (``tv_site_kind_*``: each configuration's kind from :class:`~digmat.adsorption.SiteAssigner`).
  Both sides go through the same map: the reference side is ``--reference-samples`` exact draws
  of the reference distribution the models are trained on (the minima's harmonic basins mixed
  with their Boltzmann weights, :func:`~digmat.adsorption.sample_equilibrium`), labelled like
  the model's samples. So a model that reproduced the reference exactly would score 0 up to
  sampling noise (``tv_*_noise``: two independent reference draws of the model's sample size
  against each other);
- ``*_vs_minima``: the earlier comparison, the samples' labels against the minima's Boltzmann
  probabilities and stored kinds; ``floor_*_vs_minima`` is what exact reference draws score
  there. That floor is not 0 where a basin's thermal spread crosses a labelling boundary (H:
  0.28 per kind on Ir(111) at 300 K, 0.36 on Rh(211)) or several minima share one site (three
  4-fold minima of Ag(100)+H: 0.59 per minimum), so it counted correct samples as errors;
- ``tv_site_300K`` / ``tv_site_1200K``: the same per *site* as ``digmat adsorb`` reports them —
  samples and reference minima assigned by one and the same site assigner, the minima's
  probabilities summed per site. Per-minimum TV also counts how samples split between minima
  that lie in one site a few tenths of an Å apart (CHGNet finds three such minima in the
  4-fold hollow of Ag(100)+H, 4–31 meV apart), which the site view does not;
- ``rmsd_raw`` / ``rmsd_relaxed``: adsorbate r.m.s.d. (Å) of the nearest 1200 K sample to each
  minimum, raw and after ≤ ``--short-steps`` BFGS steps with the calculator;
- ``success_at_5`` / ``success_at_1``: AdsorbML success — the most probable sites' (up to 5,
  or only the most probable) representatives at 300 K relaxed (fmax 0.05 eV/Å, ≤ 300 steps):
  best non-anomalous energy within 0.1 eV of the reference's lowest minimum; ``anomaly_rate``
  of those relaxations;
- ``--refine``: calculator-verified populations (``AdsorptionResult.refine``: up to
  ``--refine-per-site`` representatives of every site sampled at 1200 K relaxed, minima
  weighed by harmonic free energy at 300 and 1200 K): ``refine_tv_300K`` / ``refine_tv_1200K``
  per minimum and ``refine_tv_site_kind_*``, the refined minima's own harmonic distribution
  drawn and labelled like the reference draws (``refine_tv_*_vs_minima``: each refined minimum's
  probability put on the reference minimum nearest in 3-D, the earlier comparison), and the
  calls it took, ``refine_calls_ratio`` = calls / the reference's;
- ``--baseline DIR``: another search of each system, ``DIR/<the result's file name>``, scored the
  same way (``baseline_tv_*``, ``baseline_calls_ratio``, ``baseline_minima``): e.g. the corpus's
  reduced searches (a few random placements) against full AdsorbML-size ones (100), which says
  what the corpus misses and puts ``--refine`` beside a search of similar cost;
  ``*_lowest_minus_reference_eV``: its lowest minimum's energy minus the reference's;
- ``--reference-delta D``: the reference's own precision — the same minima with their Hessians
  recomputed at displacement ``D`` Å (:func:`~digmat.adsorption.recompute_vibrations`; the searches
  use 0.01) and scored like ``--refine`` (``reference_delta_tv_*``, ``reference_delta_calls_ratio``):
  a TV the reference moves by under a choice the physics should not care about, below which no
  ``--refine`` or model TV can be told apart from it;
- ``--reweight``: importance weights of the 300 K samples (log-densities by the
  probability-flow ODE, one energy call per sample): ``reweight_tv_300K`` per minimum and the
  effective sample size;
- ``--profile T ...``: at 300 K, the model's noise-prediction errors beside the reference's
  Bayes-optimal denoiser (the exact score of ``--oracle-pool`` exact draws,
  :mod:`digmat.tasks.adsorption_profile`) at those diffusion times, and the per-kind TV of samples
  drawn with the oracle's score above each ``--switch`` time and the model's below
  (``oracle_high``) and the reverse (``model_high``): the noise range where the populations go wrong;
- wall time of sampling (256 samples) and of the relaxations, calculator calls, against the
  reference search's.

Prints one JSON document (per system and medians/means over systems, with the machine).

Example::

    python recipes/bench_adsorption.py corpus/results/Ir-111-*.json --calculator chgnet
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch

from digmat.adsorption import ReferenceResult, detect_anomalies, recompute_vibrations, sample_equilibrium, symmetry_images
from digmat.tasks.sampling import adsorption_sampler, sample_adsorbates, site_kind_populations, summarise_sites, total_variation
from digmat.calculators import check_calculator_name, get_calculator
from digmat.pretrained import load_model
from digmat.systems import AdsorbateSystem


def _inplane_shifts(frame: np.ndarray) -> np.ndarray:
    """Cartesian in-plane lattice shifts of the 3 x 3 neighbourhood, (9, 3)."""
    ij = np.array([(i, j) for i in (-1, 0, 1) for j in (-1, 0, 1)], float)
    return ij @ frame[:2]


def adsorbate_offsets(system: AdsorbateSystem, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Binding-atom in-plane distance (S, P) and adsorbate r.m.s.d. (S, P) between states x (S, D), y (P, D), Å.

    The in-plane offset is taken modulo the lattice (minimum image over the 3 x 3 neighbourhood).
    """
    s = system.config.length_scale
    frame = system.frame
    du = (x[:, None, :2] - y[None, :, :2] + 0.5) % 1.0 - 0.5  # (S, P, 2)
    inplane = du @ frame[:2]  # (S, P, 3)
    cands = inplane[:, :, None, :] + _inplane_shifts(frame)[None, None]  # (S, P, 9, 3)
    k = np.argmin(np.linalg.norm(cands, axis=-1), axis=-1)
    d_in = np.take_along_axis(cands, k[..., None, None], axis=2)[:, :, 0]  # (S, P, 3)
    d_anchor = d_in + (s * (x[:, None, 2] - y[None, :, 2]))[..., None] * system.normal
    m = system.num_adsorbate
    rel = s * (x[:, None, 3 : 3 * m] - y[None, :, 3 : 3 * m]).reshape(x.shape[0], y.shape[0], m - 1, 3)
    disp = np.concatenate([d_anchor[:, :, None], d_anchor[:, :, None] + rel], axis=2)
    rmsd = np.sqrt((disp**2).sum(-1).mean(-1))
    return np.linalg.norm(d_in, axis=-1), rmsd


def assign_to_minima(system: AdsorbateSystem, x: np.ndarray, orbit: np.ndarray, owner: np.ndarray) -> np.ndarray:
    """Reference minimum of each state (S, D): the one whose binding-atom image is nearest in 3-D, -1 beyond 1 Å."""
    d_in, _ = adsorbate_offsets(system, x, orbit)
    d3 = np.sqrt(d_in**2 + (system.config.length_scale * (x[:, None, 2] - orbit[None, :, 2])) ** 2)
    nearest = np.argmin(d3, axis=1)
    return np.where(d3[np.arange(len(x)), nearest] <= 1.0, owner[nearest], -1)


def tv_per_minimum(assigned: np.ndarray, weights: np.ndarray, p_ref: np.ndarray, usable: list[int]) -> float:
    """Total variation between weighted assignments and the reference probabilities (unassigned mass counts fully)."""
    p_hat = {i: float(weights[assigned == i].sum()) for i in usable}
    return float(0.5 * (sum(abs(p_hat[i] - p_ref[i]) for i in usable) + weights[assigned == -1].sum()))


def distribution(labels, weights: np.ndarray | None = None) -> dict:
    """``{label: probability}`` of a labelling (S,), optionally weighted (weights summing to 1)."""
    labels = list(labels)
    w = np.full(len(labels), 1.0 / len(labels)) if weights is None else np.asarray(weights, float)
    out: dict = {}
    for label, wk in zip(labels, w):
        out[label] = out.get(label, 0.0) + float(wk)
    return out


def site_kinds(slab, configurations, binding: int) -> list[str]:
    """Site kind of every configuration, by the site assigner ``digmat adsorb`` reports with."""
    sites, labels = summarise_sites(slab, list(configurations), binding, bootstrap=1)
    return [sites[k].kind for k in labels]


def tv_per_site(slab, configurations, minima, p_ref: np.ndarray, binding: int) -> tuple[float, dict[str, list[float]]]:
    """Total variation between the samples' site probabilities and the reference's, both
    assigned by the same :class:`~digmat.adsorption.site_assignment.SiteAssigner` (the one
    ``digmat adsorb`` reports with): the reference minima's Boltzmann weights summed per site.

    Returns the TV and ``{"kind#label": [sampled, reference]}``.
    """
    n = len(configurations)
    sites, labels = summarise_sites(slab, list(configurations) + [m.copy() for m in minima], binding)
    p_hat = np.bincount(labels[:n], minlength=len(sites)) / n
    p_site = np.zeros(len(sites))
    np.add.at(p_site, labels[n:], p_ref)
    table = {f"{s.kind}#{k}": [round(float(p_hat[k]), 3), round(float(p_site[k]), 3)] for k, s in enumerate(sites) if p_hat[k] or p_site[k]}
    return float(0.5 * np.abs(p_hat - p_site).sum()), table


def labelled_draws(result, system: AdsorbateSystem, temperature: float, orbit: np.ndarray, owner: np.ndarray, num: int, seed: int,
                   binding: int) -> tuple[np.ndarray, list[str]]:
    """``num`` draws of ``result``'s harmonic distribution at ``temperature``: the reference minimum
    each is assigned to (-1 unassigned) and its site kind, as the model's samples are labelled."""
    draws = sample_equilibrium(result, temperature, num, seed=seed)
    return assign_to_minima(system, system.to_state(draws).numpy(), orbit, owner), site_kinds(result.slab, draws, binding)


def reference_draws(result, system: AdsorbateSystem, temperature: float, orbit: np.ndarray, owner: np.ndarray, num: int, seed: int,
                    binding: int, noise_size: int = 256) -> dict:
    """Exact draws of the reference distribution at ``temperature`` (harmonic basins, Boltzmann
    weights, symmetry images), labelled as the model's samples are.

    Returns ``minima`` and ``kinds`` (``{label: probability}``, unassigned = -1), ``assigned`` (num,)
    and ``noise``: the per-minimum and per-kind TV between two independent reference draws of
    ``noise_size`` each (what a perfect model would score with that many samples).
    """
    assigned, kinds = labelled_draws(result, system, temperature, orbit, owner, num + 2 * noise_size, seed + 7919, binding)
    a, b = slice(num, num + noise_size), slice(num + noise_size, None)
    noise = (round(total_variation(distribution(assigned[a].tolist()), distribution(assigned[b].tolist())), 4),
             round(total_variation(distribution(kinds[a]), distribution(kinds[b])), 4))
    return {"minima": distribution(assigned[:num].tolist()), "kinds": distribution(kinds[:num]), "assigned": assigned[:num], "noise": noise}


def same_map_tv(found, system: AdsorbateSystem, temperature: float, orbit: np.ndarray, owner: np.ndarray, reference: dict, num: int, seed: int,
                binding: int) -> tuple[float, float]:
    """TV per minimum and per site kind between the harmonic distribution of another search's minima
    (``found``, e.g. the refined ones) and the reference draws of :func:`reference_draws`, both
    drawn and labelled the same way."""
    assigned, kinds = labelled_draws(found, system, temperature, orbit, owner, num, seed, binding)
    return (round(total_variation(distribution(assigned.tolist()), reference["minima"]), 4),
            round(total_variation(distribution(kinds), reference["kinds"]), 4))


def versus_reference(found, prefix: str, result, system: AdsorbateSystem, orbit: np.ndarray, owner: np.ndarray, usable: list[int],
                     references: dict, binding: int, args) -> dict:
    """Another search's minima (``found``: the refined ones, or a cheaper search of the same system)
    scored against the reference: same-map TV per minimum and per site kind at 300 and 1200 K, the
    earlier minima-to-minima TV, its calculator calls against the reference's, its number of minima
    and its lowest energy minus the reference's (eV; negative: it found a lower minimum)."""
    out: dict = {}
    if found.minima:
        to_ref = assign_to_minima(system, system.to_state([m.atoms for m in found.minima]).numpy(), orbit, owner)
        for temperature in (300.0, 1200.0):
            key = f"{temperature:g}K"
            out[f"{prefix}_tv_{key}"], out[f"{prefix}_tv_site_kind_{key}"] = same_map_tv(
                found, system, temperature, orbit, owner, references[temperature], args.reference_samples, args.seed + 104729, binding)
            out[f"{prefix}_tv_{key}_vs_minima"] = round(tv_per_minimum(to_ref, found.probabilities(temperature),
                                                                       result.probabilities(temperature), usable), 4)
        out[f"{prefix}_lowest_minus_reference_eV"] = round(min(m.energy for m in found.minima)
                                                           - min(result.minima[i].energy for i in usable), 4)
    calls = found.cost.get("calls")
    out[f"{prefix}_calls_ratio"] = round(calls / result.cost["calls"], 4) if calls and result.cost.get("calls") else None
    out[f"{prefix}_minima"] = len(found.minima)
    return out


def _relax(atoms, calc, steps: int, fmax: float = 0.05):
    from ase.optimize import BFGS

    work = atoms.copy()
    work.calc = calc
    opt = BFGS(work, logfile=None)
    opt.run(fmax=fmax, steps=steps)
    return work, float(work.get_potential_energy()), opt.nsteps + 1


def bench_system(path: Path, model, calc, args) -> dict:
    result = ReferenceResult.from_json(path)
    usable = [i for i, m in enumerate(result.minima) if "saddle" not in m.flags]
    system = AdsorbateSystem(result.slab, result.adsorbate, config=model.config.state)
    images = symmetry_images(result.slab) or None
    orbit_states, owner = [], []
    for i in usable:
        m = result.minima[i]
        for op in images or [None]:
            orbit_states.append(system.to_state(m.atoms if op is None else op.apply(m.atoms, result.slab))[0].numpy())
            owner.append(i)
    orbit, owner = np.array(orbit_states), np.array(owner)
    kinds = {i: result.minima[i].site_kind for i in usable}
    out = {"system": path.stem, "search": result.system_id, "minima": len(usable), "reference": {
        "calls": result.cost.get("calls"), "wall_seconds": result.cost.get("wall_seconds"),
        "probabilities": {str(t): {result.minima[i].site_kind + f"#{i}": float(result.probabilities(t)[i]) for i in usable} for t in (300.0, 1200.0)}}}
    binding = len(result.slab) + system.anchor
    samples, references = {}, {}
    for temperature in (300.0, 1200.0):
        key = f"{temperature:g}K"
        t0 = time.perf_counter()
        res = sample_adsorbates(result.slab, result.adsorbate, model, num_samples=args.num_samples, temperature=temperature, seed=args.seed,
                                sampler=args.sampler_config)
        seconds = time.perf_counter() - t0
        x = system.to_state(res.configurations).numpy()
        d_in, rmsd = adsorbate_offsets(system, x, orbit)
        assigned = assign_to_minima(system, x, orbit, owner)
        p_ref = result.probabilities(temperature)
        kind_ref = {}
        for i in usable:
            kind_ref[kinds[i]] = kind_ref.get(kinds[i], 0.0) + float(p_ref[i])
        ref = reference_draws(result, system, temperature, orbit, owner, args.reference_samples, args.seed, binding)
        references[temperature] = ref
        model_kinds = [a.info["kind"] for a in res.configurations]  # sample_adsorbates' own site labels
        p_hat = {i: float(np.mean(assigned == i)) for i in usable}
        out[f"sampling_{key}"] = {"seconds": round(seconds, 2), "network_evaluations_per_sample": res.evaluations,
                                 "sites": {s.kind + f"#{s.label}": round(s.probability, 3) for s in res.sites},
                                 "assigned": {kinds[i] + f"#{i}": round(p_hat[i], 3) for i in usable},
                                 "unassigned": round(float(np.mean(assigned == -1)), 3),
                                 "site_kinds": {k: round(v, 3) for k, v in sorted(distribution(model_kinds).items())},
                                 "reference_site_kinds": {k: round(v, 3) for k, v in sorted(ref["kinds"].items())}}
        out[f"tv_{key}"] = round(total_variation(distribution(assigned.tolist()), ref["minima"]), 4)
        out[f"tv_site_kind_{key}"] = round(total_variation(distribution(model_kinds), ref["kinds"]), 4)
        out[f"tv_{key}_noise"], out[f"tv_site_kind_{key}_noise"] = ref["noise"]
        out[f"tv_{key}_vs_minima"] = round(tv_per_minimum(assigned, np.full(len(x), 1.0 / len(x)), p_ref, usable), 4)
        out[f"tv_site_kind_{key}_vs_minima"] = round(total_variation(site_kind_populations(res.sites), kind_ref), 4)
        out[f"floor_tv_{key}_vs_minima"] = round(tv_per_minimum(ref["assigned"], np.full(len(ref["assigned"]), 1.0 / len(ref["assigned"])), p_ref, usable), 4)
        out[f"floor_tv_site_kind_{key}_vs_minima"] = round(total_variation(ref["kinds"], kind_ref), 4)
        tv_site, table = tv_per_site(result.slab, res.configurations, [result.minima[i].atoms for i in usable], np.asarray(p_ref)[usable], binding)
        out[f"tv_site_{key}"] = round(tv_site, 4)
        out[f"sampling_{key}"]["per_site_sampled_reference"] = table
        samples[temperature] = (res, x, d_in, rmsd)
    res, x, d_in, rmsd = samples[1200.0]
    covered = [bool((d_in[:, owner == i] < 0.5).any()) for i in usable]
    out["coverage_1200K"] = float(np.mean(covered)) if usable else None
    raw, relaxed, calls = [], [], 0
    t0 = time.perf_counter()
    for i in usable:
        cols = owner == i
        j = int(np.argmin(rmsd[:, cols].min(axis=1)))
        raw.append(float(rmsd[j, cols].min()))
        if calc is not None:
            atoms, _, n = _relax(res.configurations[j], calc, args.short_steps)
            calls += n
            _, r = adsorbate_offsets(system, system.to_state(atoms).numpy(), orbit[cols])
            relaxed.append(float(r.min()))
    out["rmsd_raw"] = raw
    out["rmsd_relaxed"] = relaxed or None
    if calc is not None:
        res300 = samples[300.0][0]
        top = sorted(res300.sites, key=lambda s: -s.probability)[:5]
        e_ref = min(result.minima[i].energy for i in usable)
        relaxed_energies = []  # per site, most probable first; None for an anomalous relaxation
        for s in top:
            start = res300.configurations[s.representative]
            atoms, e, n = _relax(start, calc, 300)
            calls += n
            relaxed_energies.append(None if detect_anomalies(start, atoms).any else e)
        energies = [e for e in relaxed_energies if e is not None]
        anomalies = len(relaxed_energies) - len(energies)
        best = min(energies) if energies else None
        out["success_at_5"] = bool(best is not None and best <= e_ref + 0.1)
        out["success_at_1"] = bool(relaxed_energies and relaxed_energies[0] is not None and relaxed_energies[0] <= e_ref + 0.1)
        out["best_relaxed_minus_reference_eV"] = None if best is None else round(best - e_ref, 4)
        out["anomaly_rate"] = anomalies / max(len(top), 1)
        out["relaxation_calls"] = calls
        out["relaxation_seconds"] = round(time.perf_counter() - t0, 1)
    if args.refine:
        t0 = time.perf_counter()
        refinement = samples[1200.0][0].refine(args.calculator, per_site=args.refine_per_site)
        out.update(versus_reference(refinement.reference, "refine", result, system, orbit, owner, usable, references, binding, args))
        out["refine_calls"] = refinement.calls
        out["refine_seconds"] = round(time.perf_counter() - t0, 1)
    if args.baseline is not None:  # main() checked that every baseline file exists
        out.update(versus_reference(ReferenceResult.from_json(args.baseline / path.name), "baseline", result, system, orbit, owner, usable, references, binding, args))
    if args.reference_delta is not None:
        again = recompute_vibrations(result, args.calculator, delta=args.reference_delta)
        out.update(versus_reference(again, "reference_delta", result, system, orbit, owner, usable, references, binding, args))
    if args.profile:
        out["profile_300K"] = profile_system(model, system, result, references[300.0]["kinds"], args)
    if args.reweight:
        t0 = time.perf_counter()
        res = sample_adsorbates(result.slab, result.adsorbate, model, num_samples=args.num_samples, temperature=300.0,
                                seed=args.seed, log_density=True, sampler=args.sampler_config)
        info = res.reweight(args.calculator)
        w = np.array([a.info["weight"] for a in res.configurations])
        w = w / w.sum()
        assigned = assign_to_minima(system, system.to_state(res.configurations).numpy(), orbit, owner)
        out["reweight_tv_300K"] = round(total_variation(distribution(assigned.tolist(), w), references[300.0]["minima"]), 4)
        out["reweight_tv_300K_vs_minima"] = round(tv_per_minimum(assigned, w, result.probabilities(300.0), usable), 4)
        out["reweight_ess"] = info["effective_sample_size"]
        out["reweight_calls"] = info["calls"]
        out["reweight_seconds"] = round(time.perf_counter() - t0, 1)
    return out


def profile_system(model, system: AdsorbateSystem, result, reference_kinds: dict, args) -> dict:
    """The ``--profile`` block at 300 K: denoising errors of model and oracle per time, and the
    per-kind TV (against the reference draws) of the model, the oracle and the switched samplers."""
    from digmat.core import SampleConfig
    from digmat.tasks.adsorption_profile import denoising_profile, reference_oracle, switched_populations

    oracle = reference_oracle(system, system.diffusion(model.config.schedule), result, 300.0, num=args.oracle_pool, seed=args.seed + 31)
    data = system.to_state(sample_equilibrium(result, 300.0, 512, seed=args.seed + 61))
    rows = denoising_profile(model, system, oracle, data, 300.0, args.profile, seed=args.seed)
    shares = switched_populations(model, system, oracle, 300.0, args.switch, num=args.num_samples, seed=args.seed,
                                  sampler=SampleConfig(args.sampler_config))

    def tv(p: dict) -> float:
        return round(total_variation(p, reference_kinds), 4)

    return {"denoising": rows, "tv_site_kind_model": tv(shares["model"]), "tv_site_kind_oracle": tv(shares["oracle"]),
            "tv_site_kind_oracle_high": {str(k): tv(v) for k, v in shares["oracle_high"].items()},
            "tv_site_kind_model_high": {str(k): tv(v) for k, v in shares["model_high"].items()}}


_WORKER: dict = {}


def _start_worker(args: argparse.Namespace, threads: int | None = 1) -> None:
    if threads is not None:
        torch.set_num_threads(threads)
    relax = args.calculator and not args.no_success
    _WORKER.update(args=args, model=load_model(args.model), calc=get_calculator(args.calculator) if relax else None)


def _bench_one(path: Path) -> dict:
    try:
        return bench_system(path, _WORKER["model"], _WORKER["calc"], _WORKER["args"])
    except ValueError as exc:  # e.g. an element or adsorbate the model does not know
        return {"system": path.stem, "skipped": str(exc)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("results", nargs="+", type=Path, help="reference result JSON files (held-out systems)")
    parser.add_argument("--model", default=None, help="checkpoint or shipped model name (default: shipped)")
    parser.add_argument("--calculator", default=None, help="calculator for relaxations (the reference's, e.g. chgnet; default: no relaxations)")
    parser.add_argument("-n", "--num-samples", type=int, default=256)
    parser.add_argument("--sampler", choices=("ode", "sde"), default=None, help="default: sample_adsorbates' default")
    parser.add_argument("--steps", type=int, default=None, help="sampler steps (default: the sampler's default)")
    parser.add_argument("--reference-samples", type=int, default=2048, help="exact reference draws per system and temperature (the TV's reference side)")
    parser.add_argument("--short-steps", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--refine", action="store_true", help="also score calculator-verified populations (needs --calculator)")
    parser.add_argument("--no-success", action="store_true",
                        help="skip the r.m.s.d./success@k relaxations (the --calculator columns other than --refine, --reweight, --reference-delta)")
    parser.add_argument("--refine-per-site", type=int, default=2)
    parser.add_argument("--baseline", type=Path, default=None, metavar="DIR",
                        help="also score another search of each system, DIR/<same file name> (e.g. the corpus's reduced searches against full ones)")
    parser.add_argument("--reference-delta", type=float, default=None, metavar="D",
                        help="also score the reference with its Hessians recomputed at displacement D, Å (its precision; needs --calculator)")
    parser.add_argument("--reweight", action="store_true", help="also score importance reweighting of the 300 K samples (needs --calculator; slow)")
    parser.add_argument("--profile", type=float, nargs="*", default=None, metavar="T",
                        help="diffusion times of the denoising profile against the reference's Bayes-optimal denoiser (300 K)")
    parser.add_argument("--switch", type=float, nargs="*", default=[0.15, 0.3, 0.45], help="with --profile: switch times of the oracle/model samplers")
    parser.add_argument("--oracle-pool", type=int, default=4096, help="with --profile: exact draws the oracle knows")
    parser.add_argument("--workers", type=int, default=1, help="systems benchmarked in parallel processes (one torch thread each)")
    args = parser.parse_args()
    if (args.refine or args.reweight or args.reference_delta is not None) and not args.calculator:
        parser.error("--refine, --reweight and --reference-delta need --calculator")
    if args.calculator:
        try:
            check_calculator_name(args.calculator)
        except ValueError as err:
            parser.error(f"--calculator: {err}")
    if args.reference_delta is not None and not args.reference_delta > 0:
        parser.error(f"--reference-delta must be a positive displacement in Å, got {args.reference_delta}")
    missing = [str(args.baseline / path.name) for path in args.results if args.baseline is not None and not (args.baseline / path.name).is_file()]
    if missing:
        parser.error(f"--baseline: no {missing[0]}" + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""))
    try:  # one SamplerConfig for every system; e.g. --sampler ode --steps 1 is refused before any work
        args.sampler_config = adsorption_sampler(args.sampler, args.steps)
    except ValueError as exc:
        parser.error(str(exc))
    if args.workers > 1:  # systems in parallel processes, one torch thread each
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(args.workers, initializer=_start_worker, initargs=(args,)) as pool:
            systems = list(pool.map(_bench_one, args.results))
    else:
        _start_worker(args, threads=None)
        systems = [_bench_one(path) for path in args.results]
    done = [s for s in systems if "skipped" not in s]

    def agg(key, fn=np.mean):
        vals = [s[key] for s in done if s.get(key) is not None]
        return None if not vals else round(float(fn(vals)), 4)

    def agg_profile(key):  # mean over systems of a --profile TV (or of each switch time's)
        vals = [s["profile_300K"][key] for s in done if "profile_300K" in s]
        if not vals:
            return None
        if isinstance(vals[0], dict):
            return {k: round(float(np.mean([v[k] for v in vals])), 4) for k in vals[0]}
        return round(float(np.mean(vals)), 4)

    summary = {
        "systems": len(done), "skipped": len(systems) - len(done),
        "coverage_1200K_mean": agg("coverage_1200K"), "tv_300K_mean": agg("tv_300K"), "tv_1200K_mean": agg("tv_1200K"),
        "tv_site_kind_300K_mean": agg("tv_site_kind_300K"), "tv_site_kind_1200K_mean": agg("tv_site_kind_1200K"),
        "tv_site_300K_mean": agg("tv_site_300K"), "tv_site_1200K_mean": agg("tv_site_1200K"),
        **{f"{name}_mean": agg(name) for name in ("tv_300K_noise", "tv_1200K_noise", "tv_site_kind_300K_noise", "tv_site_kind_1200K_noise",
                                                  "tv_300K_vs_minima", "tv_1200K_vs_minima", "tv_site_kind_300K_vs_minima", "tv_site_kind_1200K_vs_minima",
                                                  "floor_tv_300K_vs_minima", "floor_tv_1200K_vs_minima",
                                                  "floor_tv_site_kind_300K_vs_minima", "floor_tv_site_kind_1200K_vs_minima")},
        "rmsd_raw_median": None if not done else round(float(np.median([r for s in done for r in s["rmsd_raw"]])), 3),
        "rmsd_relaxed_median": None if not any(s.get("rmsd_relaxed") for s in done) else round(float(np.median([r for s in done for r in s["rmsd_relaxed"] or []])), 3),
        "success_at_5": agg("success_at_5"), "success_at_1": agg("success_at_1"), "anomaly_rate": agg("anomaly_rate"),
        "refine_tv_300K_mean": agg("refine_tv_300K"), "refine_tv_1200K_mean": agg("refine_tv_1200K"),
        "refine_tv_site_kind_300K_mean": agg("refine_tv_site_kind_300K"), "refine_tv_site_kind_1200K_mean": agg("refine_tv_site_kind_1200K"),
        "refine_tv_300K_vs_minima_mean": agg("refine_tv_300K_vs_minima"), "refine_tv_1200K_vs_minima_mean": agg("refine_tv_1200K_vs_minima"),
        "refine_calls_ratio_median": agg("refine_calls_ratio", np.median),
        "refine_lowest_minus_reference_eV_min": agg("refine_lowest_minus_reference_eV", np.min),
        **{f"baseline_{name}_mean": agg(f"baseline_{name}") for name in ("tv_300K", "tv_1200K", "tv_site_kind_300K", "tv_site_kind_1200K")},
        "baseline_calls_ratio_median": agg("baseline_calls_ratio", np.median),
        **{f"reference_delta_{name}_mean": agg(f"reference_delta_{name}") for name in ("tv_300K", "tv_1200K", "tv_site_kind_300K", "tv_site_kind_1200K")},
        "baseline_lowest_minus_reference_eV_min": agg("baseline_lowest_minus_reference_eV", np.min),
        "reweight_tv_300K_mean": agg("reweight_tv_300K"), "reweight_tv_300K_vs_minima_mean": agg("reweight_tv_300K_vs_minima"), "reweight_ess_median": agg("reweight_ess", np.median),
        **({"profile_tv_site_kind_300K_mean": {
            key: agg_profile(key) for key in ("tv_site_kind_model", "tv_site_kind_oracle", "tv_site_kind_oracle_high", "tv_site_kind_model_high")}}
           if args.profile else {}),
        "sampling_seconds_median": None if not done else round(float(np.median([s["sampling_300K"]["seconds"] for s in done])), 2),
        "reference_wall_seconds_median": None if not done else float(np.median([s["reference"]["wall_seconds"] or np.nan for s in done])),
    }
    machine = {"platform": platform.platform(), "cpus": os.cpu_count(), "torch": torch.__version__, "threads": torch.get_num_threads() if args.workers == 1 else 1, "workers": args.workers,
               "model": args.model or "shipped default", "calculator": args.calculator, "samples": args.num_samples,
               "sampler": args.sampler_config.method, "steps": args.sampler_config.steps}
    print(json.dumps({"summary": summary, "machine": machine, "per_system": systems}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
