"""Site populations of an adsorbate from a calculator's energy alone: replica exchange against a reference search.

The first stage of learning adsorption from an energy with no reference search (issue 16, item 3):
equilibrium samples of ``p(x) ∝ exp(-E(x) / k_B T)`` over the adsorbate's states on the fixed
slab, drawn by :func:`digmat.core.replica_exchange_mala` on
:class:`digmat.tasks.adsorbate_energy.AdsorbateEnergy` (calculator energy and forces; the anchor
kept 0.3–3.5 Å above the surface). Chains start on every symmetry-distinct site
(``heuristic_placements``, geometry only, no relaxation); rungs span ``--ladder`` K, hot rungs
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
import os
import platform
import time

import numpy as np
import torch

KB = 8.617333262e-5  # eV/K
LADDER = (300.0, 424.0, 600.0, 849.0, 1200.0, 1697.0, 2400.0)
FULL = {"chains": 8, "sweeps": 400, "burn_in": 100}
SMOKE = {"chains": 2, "sweeps": 6, "burn_in": 2}


def site_populations(system, slab, states: torch.Tensor) -> dict[str, float]:
    """Share of each site kind among states (N, D) (binding atom = the system's anchor), from
    :func:`digmat.tasks.sampling.summarise_sites` — the rule ``digmat adsorb`` reports with."""
    from digmat.tasks.sampling import summarise_sites

    sites, _ = summarise_sites(slab, system.to_atoms(states), system.num_slab + system.anchor)
    kinds: dict[str, float] = {}
    for site in sites:
        kinds[site.kind] = kinds.get(site.kind, 0.0) + site.probability
    return dict(sorted(kinds.items()))


def total_variation(p: dict[str, float], q: dict[str, float]) -> float:
    return 0.5 * sum(abs(p.get(k, 0.0) - q.get(k, 0.0)) for k in set(p) | set(q))


def run_system(path: str, args) -> dict:
    from digmat.adsorption import ReferenceResult
    from digmat.adsorption.placement import heuristic_placements
    from digmat.calculators import get_calculator
    from digmat.core import replica_exchange_mala
    from digmat.systems import AdsorbateSystem
    from digmat.tasks.adsorbate_energy import AdsorbateEnergy

    ref = ReferenceResult.from_json(path)
    name = args.calculator or ref.calculator
    system = AdsorbateSystem(ref.slab, ref.adsorbate)
    energy = AdsorbateEnergy(system, get_calculator(name), height_window=tuple(args.height_window))
    starts = system.to_state(heuristic_placements(ref.slab, ref.adsorbate, relax_surface=False))
    x0 = starts[torch.arange(args.chains) % starts.shape[0]]
    ladder = sorted(args.ladder)
    betas = 1.0 / (KB * torch.tensor(ladder, dtype=torch.float64))   # coldest first
    t0 = time.perf_counter()
    out = replica_exchange_mala(system.space, energy, x0, betas, sweeps=args.sweeps, burn_in=args.burn_in,
                                step_size=args.step_size, generator=torch.Generator().manual_seed(args.seed))
    seconds = time.perf_counter() - t0
    rungs = {}
    for k, temp in enumerate(ladder):
        states = out.samples[k].reshape(-1, system.dim)
        row = {"populations": site_populations(system, ref.slab, states),
               "mean_energy_eV": float(out.energy[k].mean()), "mala_acceptance": float(out.acceptance[k])}
        if temp in ref.temperatures:
            reference = ref.site_probabilities(temp)
            row.update(reference=reference, tv_site_kind=total_variation(row["populations"], reference))
        rungs[f"{temp:g}K"] = row
    if args.save:
        from digmat.files import atomic_write_bytes

        atomic_write_bytes(os.path.join(args.save, f"{ref.system_id}_tempering.npz"), lambda fh: np.savez_compressed(
            fh, temperatures=np.asarray(ladder), states=out.samples.numpy(), energy=out.energy.numpy(),
            energy_grad=out.energy_grad.numpy(), system=ref.system_id))
    calls = int(ref.cost.get("calls", 0)) if ref.cost else 0
    return {"system": ref.system_id, "calculator": name, "reference_calculator": ref.calculator, "rungs": rungs,
            "swap_acceptance": out.swap_acceptance.tolist(), "calls": energy.calls, "reference_calls": calls,
            "calls_ratio": energy.calls / calls if calls else None, "seconds": seconds,
            "samples_per_rung": int(out.samples.shape[1] * out.samples.shape[2])}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("results", nargs="+", help="reference result JSON files")
    parser.add_argument("--calculator", default=None, help="calculator name (default: each result's own)")
    parser.add_argument("--ladder", type=float, nargs="+", default=list(LADDER), help="rung temperatures, K")
    parser.add_argument("--chains", type=int, help=f"chains per rung (default {FULL['chains']})")
    parser.add_argument("--sweeps", type=int, help=f"sweeps in all (default {FULL['sweeps']})")
    parser.add_argument("--burn-in", type=int, help=f"adapting, unrecorded sweeps (default {FULL['burn_in']})")
    parser.add_argument("--step-size", type=float, default=1e-4, help="starting MALA step, squared state units (Å²)")
    parser.add_argument("--height-window", type=float, nargs=2, default=(0.3, 3.5), metavar=("LOW", "HIGH"),
                        help="allowed anchor heights above the top surface atom, Å")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--save", default=None, metavar="DIR",
                        help="write each system's recorded samples (states, energies eV, energy gradients eV per state "
                             "unit, per rung K) to DIR/<system>_tempering.npz: training data for target score matching")
    parser.add_argument("--smoke", action="store_true", help="tiny settings (seconds)")
    args = parser.parse_args(argv)
    for key, value in (SMOKE if args.smoke else FULL).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.chains < 1 or args.sweeps < 1:
        parser.error("--chains and --sweeps must be positive integers")
    if not 0 <= args.burn_in < args.sweeps:
        parser.error(f"--burn-in must lie in [0, --sweeps), got {args.burn_in}")
    if not all(t > 0 for t in args.ladder) or len(set(args.ladder)) != len(args.ladder):
        parser.error("--ladder temperatures must be positive and distinct")
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
