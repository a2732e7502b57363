"""Site populations of an adsorbate from a calculator's energy alone: replica exchange against a reference search.

The first stage of learning adsorption from an energy with no reference search (issue 16, item 3):
equilibrium samples of ``p(x) ∝ exp(-E(x) / k_B T)`` over the adsorbate's states on the fixed
slab, drawn by :func:`digmat.core.replica_exchange_mala` on
:class:`digmat.tasks.adsorbate_energy.AdsorbateEnergy` (calculator energy and forces; the anchor
kept 0.3–3.5 Å above the surface). Chains start on every symmetry-distinct site
(``heuristic_placements``, geometry only, no relaxation); rungs span ``-T`` up to ``--hottest`` K
(:func:`digmat.tasks.energy_training.sample_adsorbate_boltzmann`), hot rungs
cross the barriers between sites and swaps carry the crossings down.

For each reference result given (``digmat reference`` / corpus JSON), at each of its temperatures
that is a rung: the recorded samples' site kinds (:class:`~digmat.adsorption.SiteAssigner`, the
rule that labels the reference minima) against the reference's harmonic site-kind populations —
total variation — and the calculator calls spent against the search's ``cost["calls"]``. The
reference is harmonic (minima + Hessians); the samples are anharmonic Boltzmann samples of the
same energy, so the two agree only as far as the harmonic picture holds (at 1,200 K it
underestimates shallow, broad sites).

Prints one JSON document: per system, the per-rung populations and TV, MALA and swap acceptance,
calls, seconds; and the machine.

Example::

    python recipes/tempering_sites.py data/corpus/results/Pt-111-O.json --chains 8 --sweeps 400
    python recipes/tempering_sites.py data/corpus/results/Cu-111-H.json --calculator emt --smoke
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import torch

from digmat.tasks.sampling import site_kind_populations, summarise_sites, total_variation

FULL = {"chains": 8, "sweeps": 400, "burn_in": 100}
SMOKE = {"chains": 2, "sweeps": 6, "burn_in": 2}


def site_populations(system, slab, states: torch.Tensor) -> dict[str, float]:
    """Share of each site kind among states (N, D) (binding atom = the system's anchor), by
    :func:`digmat.tasks.sampling.summarise_sites` — the rule ``digmat adsorb`` reports with."""
    sites, _ = summarise_sites(slab, system.to_atoms(states), system.num_slab + system.anchor)
    return site_kind_populations(sites)


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def run_system(path: str, args) -> dict:
    from digmat.adsorption import ReferenceResult
    from digmat.calculators import get_calculator
    from digmat.tasks.energy_training import TemperingConfig, sample_adsorbate_boltzmann

    ref = ReferenceResult.from_json(path)
    name = args.calculator or ref.calculator
    config = TemperingConfig(chains=args.chains, sweeps=args.sweeps, burn_in=args.burn_in, hottest=args.hottest,
                             rung_ratio=args.rung_ratio, step_size=args.step_size,
                             height_window=tuple(args.height_window), seed=args.seed, jump_every=args.jump_every)
    system, out = sample_adsorbate_boltzmann(ref.slab, ref.adsorbate, get_calculator(name), args.temperatures, config)
    rungs, rhat = {}, out.rhat()
    for k, temp in enumerate(out.ladder.tolist()):
        row = {"populations": site_populations(system, ref.slab, out.states[k]),
               "mean_energy_eV": float(out.energy[k].mean()), "mala_acceptance": float(out.acceptance[k]),
               "jump_acceptance": _finite(float(out.jump_acceptance[k])), "rhat": _finite(float(rhat[k]))}
        if any(abs(temp - t) < 1e-6 for t in ref.temperatures):
            reference = ref.site_probabilities(temp)
            row.update(reference=reference, tv_site_kind=total_variation(row["populations"], reference))
        rungs[f"{temp:g}K"] = row
    if args.save:
        out.save(os.path.join(args.save, f"{ref.system_id}_samples.npz"), {"reference": path, "calculator": name})
    calls = int(ref.cost.get("calls", 0)) if ref.cost else 0
    return {"system": ref.system_id, "calculator": name, "reference_calculator": ref.calculator, "rungs": rungs,
            "swap_acceptance": out.swap_acceptance.tolist(), "calls": out.calls, "reference_calls": calls,
            "calls_ratio": out.calls / calls if calls else None, "seconds": out.seconds,
            "samples_per_rung": int(out.states.shape[1])}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("results", nargs="+", help="reference result JSON files")
    parser.add_argument("--calculator", default=None, help="calculator name (default: each result's own)")
    parser.add_argument("-T", "--temperatures", type=float, nargs="+", default=[300.0, 600.0, 1200.0],
                        help="temperatures compared with the reference, K; each is a rung (default 300 600 1200)")
    parser.add_argument("--hottest", type=float, default=2400.0, help="hottest rung, K (default 2400)")
    parser.add_argument("--rung-ratio", type=float, default=2**0.5, help="largest ratio of neighbouring rungs (default 1.414)")
    parser.add_argument("--chains", type=int, help=f"chains per rung (default {FULL['chains']})")
    parser.add_argument("--sweeps", type=int, help=f"sweeps in all (default {FULL['sweeps']})")
    parser.add_argument("--burn-in", type=int, help=f"adapting, unrecorded sweeps (default {FULL['burn_in']})")
    parser.add_argument("--step-size", type=float, default=1e-4, help="starting MALA step, squared state units (Å²)")
    parser.add_argument("--height-window", type=float, nargs=2, default=(0.3, 3.5), metavar=("LOW", "HIGH"),
                        help="allowed anchor heights above the top surface atom, Å")
    parser.add_argument("--jump-every", type=int, default=2, help="a site-jumping move every N sweeps (default 2; 0: none)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--save", default=None, metavar="DIR",
                        help="write each system's recorded samples (BoltzmannSamples: states, energies eV, energy gradients "
                             "eV per state unit, per rung K) to DIR/<system>_samples.npz: training data for target score matching")
    parser.add_argument("--smoke", action="store_true", help="tiny settings (seconds)")
    args = parser.parse_args(argv)
    for key, value in (SMOKE if args.smoke else FULL).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.chains < 1 or args.sweeps < 1:
        parser.error("--chains and --sweeps must be positive integers")
    if not 0 <= args.burn_in < args.sweeps:
        parser.error(f"--burn-in must lie in [0, --sweeps), got {args.burn_in}")
    if not all(t > 0 for t in args.temperatures) or len(set(args.temperatures)) != len(args.temperatures):
        parser.error("--temperatures must be positive and distinct")
    if not args.rung_ratio > 1:
        parser.error(f"--rung-ratio must be > 1, got {args.rung_ratio}")
    if not args.step_size > 0:
        parser.error(f"--step-size must be > 0, got {args.step_size}")
    if not args.height_window[0] < args.height_window[1]:
        parser.error("--height-window must be LOW < HIGH")
    if args.save is not None:
        try:
            os.makedirs(args.save, exist_ok=True)
        except OSError as err:
            parser.error(f"--save {args.save}: {err.strerror}")
    for path in args.results:
        if not os.path.isfile(path):
            parser.error(f"no such reference result: {path}")
    if args.calculator is not None:
        from digmat.calculators import check_calculator_name

        try:
            check_calculator_name(args.calculator)
        except (ValueError, ImportError) as err:
            parser.error(str(err))
    systems = [run_system(path, args) for path in args.results]
    out = {"systems": systems, "config": {k: v for k, v in vars(args).items()},
           "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "torch": torch.__version__,
                       "threads": torch.get_num_threads()}}
    print(json.dumps(out, indent=1))
    return out


if __name__ == "__main__":
    torch.set_num_threads(1)
    main()
