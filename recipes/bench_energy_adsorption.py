"""Adsorption models trained from a calculator's energy alone, against the reference search of the same system.

For each ``RESULT RUN`` pair — a reference search (``digmat reference`` / corpus JSON) and the
folder of ``digmat train adsorption --energy CALC SLAB ADSORBATE ... --out RUN`` on the same slab
and adsorbate — it reports, at 300 and 1200 K, site-kind populations (the rule ``digmat adsorb``
reports with, :func:`digmat.tasks.sampling.summarise_sites`) and their total variation against
the reference's harmonic populations, for

- ``replica_exchange``: the run's own Boltzmann samples of the calculator energy (what the model
  learnt from; anharmonic, so it differs from the harmonic reference where that approximation
  does),
- ``energy_model``: the trained model's samples (``-n`` by the probability-flow ODE), also
  against the replica-exchange samples (how well the network learnt them),
- ``shipped``: the shipped default model on the same system (the baseline, same run; ``--baseline``),

plus site-kind coverage at 1200 K (reference kinds above 1 % that the samples visit), the
replica-exchange chains' split-R̂ at each temperature (about 1: the chains agree) and the
calculator calls of the run against the search's. Prints one JSON document with the machine.

Example::

    python recipes/bench_energy_adsorption.py data/corpus/results/Ir-111-O.json runs/Ir-111-O-chgnet
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import time
from pathlib import Path

import torch

from digmat.adsorption import ReferenceResult
from digmat.pretrained import load_model
from digmat.systems import AdsorbateSystem
from digmat.tasks.energy_training import BoltzmannSamples
from digmat.tasks.sampling import sample_adsorbates, site_kind_populations, summarise_sites, total_variation

TEMPERATURES = (300.0, 1200.0)


def kind_populations(sites) -> dict[str, float]:
    return {k: round(v, 4) for k, v in site_kind_populations(sites).items()}


def tv(p: dict[str, float], q: dict[str, float]) -> float:
    return round(total_variation(p, q), 4)


def _finite(value: float, digits: int = 3) -> float | None:
    return round(value, digits) if math.isfinite(value) else None


def coverage(p: dict[str, float], reference: dict[str, float], floor: float = 0.01) -> float:
    wanted = [k for k, v in reference.items() if v > floor]
    return round(sum(p.get(k, 0.0) > 0 for k in wanted) / max(len(wanted), 1), 4)


def bench_pair(result_path: str, run: Path, args) -> dict:
    ref = ReferenceResult.from_json(result_path)
    samples, settings = BoltzmannSamples.load(run / "samples.npz")
    rhat = samples.rhat()
    model = load_model(run / "model.pt")
    system = AdsorbateSystem(ref.slab, ref.adsorbate, config=model.config.state)
    binding = len(ref.slab) + system.anchor
    out = {"system": ref.system_id, "run": str(run), "calculator": settings.get("calculator"), "reference_calculator": ref.calculator,
           "calls": samples.calls, "reference_calls": ref.cost.get("calls"), "sampling_seconds": round(samples.seconds, 1),
           "training_seconds": model.metadata.get("seconds"), "rungs": samples.ladder.tolist(),
           "jump_every": settings.get("tempering", {}).get("jump_every", 0),
           "rhat": {f"{t:g}K": _finite(float(rhat[samples.rung(t)])) for t in TEMPERATURES}}
    if out["reference_calls"]:
        out["calls_ratio"] = round(samples.calls / out["reference_calls"], 2)
    models = {"energy_model": model}
    if args.baseline:
        models["shipped"] = load_model(None)
    for temperature in TEMPERATURES:
        key = f"{temperature:g}K"
        reference = {k: round(v, 4) for k, v in ref.site_probabilities(temperature).items()}
        row = {"reference": reference}
        pt = kind_populations(summarise_sites(ref.slab, system.to_atoms(samples.states[samples.rung(temperature)]), binding)[0])
        row["replica_exchange"] = {"populations": pt, "tv": tv(pt, reference)}
        for name, m in models.items():
            t0 = time.perf_counter()
            res = sample_adsorbates(ref.slab, ref.adsorbate, m, num_samples=args.num_samples, temperature=temperature, seed=args.seed)
            pops = kind_populations(res.sites)
            row[name] = {"populations": pops, "tv": tv(pops, reference), "tv_vs_replica_exchange": tv(pops, pt),
                         "coverage": coverage(pops, reference), "seconds": round(time.perf_counter() - t0, 1)}
        out[key] = row
    return out


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("pairs", nargs="+", help="RESULT.json RUN_DIR pairs")
    parser.add_argument("-n", "--num-samples", type=int, default=256)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-baseline", dest="baseline", action="store_false", help="skip the shipped model")
    args = parser.parse_args(argv)
    if len(args.pairs) % 2:
        parser.error("give RESULT RUN pairs")
    pairs = [(args.pairs[i], Path(args.pairs[i + 1])) for i in range(0, len(args.pairs), 2)]
    for result, run in pairs:
        if not os.path.isfile(result):
            parser.error(f"no such reference result: {result}")
        for name in ("samples.npz", "model.pt"):
            if not (run / name).is_file():
                parser.error(f"{run} has no {name} (the --out folder of digmat train adsorption --energy)")
    systems = [bench_pair(result, run, args) for result, run in pairs]
    names = ["replica_exchange", "energy_model"] + (["shipped"] if args.baseline else [])
    summary = {f"tv_{n}_{t:g}K_mean": round(sum(s[f"{t:g}K"][n]["tv"] for s in systems) / len(systems), 4)
               for n in names for t in TEMPERATURES}
    summary["calls_ratio_median"] = sorted(s.get("calls_ratio") or 0 for s in systems)[len(systems) // 2]
    out = {"summary": summary, "systems": systems, "config": {"num_samples": args.num_samples, "seed": args.seed},
           "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "torch": torch.__version__, "threads": torch.get_num_threads()}}
    print(json.dumps(out, indent=1))
    return out


if __name__ == "__main__":
    torch.set_num_threads(1)
    main()
