"""Anharmonic site populations of a reference search: harmonic against basin-sampled, per minimum and per site kind.

A reference search weighs its minima by harmonic free energy. For each result given, at each
temperature, :func:`digmat.adsorption.anharmonic_corrections` samples every true minimum's
basin with the search's own calculator (importance sampling from its widened harmonic Gaussian,
slab frozen) and prints, as one JSON document:

- ``harmonic`` / ``anharmonic``: each minimum's population without and with its correction;
- ``harmonic_site_kinds``: the result's own ``site_probabilities(T)`` (each minimum's weight on
  the kind of the point its relaxation stopped at); ``anharmonic_site_kinds``: each basin's
  weight split over the kinds its sampled configurations lie on
  (:func:`~digmat.adsorption.anharmonic_site_probabilities`), which does not depend on where in
  a flat basin the relaxation stopped;
- per minimum: the correction ΔF (eV), its standard error, the share of draws inside the basin,
  the weights' effective sample size, calls, the basin's split over kinds;
- ``converged``: every basin reached the error target with the effective sample size asked for.
  When it is false the anharmonic figures are not an answer: a basin much flatter than its
  Hessian (a molecule wobbling over a flat valley at 1,200 K) defeats a Gaussian proposal, and
  direct sampling (``recipes/tempering_sites.py``) is the tool there.

Example::

    python recipes/anharmonic_reference.py data/corpus/full/Ir-111-O.json -T 1200
    python recipes/anharmonic_reference.py search.json --calculator emt -T 300 --max-samples 64
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import numpy as np
import torch

from digmat.cli.options import at_least, check_calculators, non_negative


def run_system(path: str, args) -> dict:
    from digmat.adsorption import (
        ReferenceResult,
        anharmonic_corrections,
        anharmonic_probabilities,
        anharmonic_site_probabilities,
    )
    from digmat.calculators import get_calculator

    result = ReferenceResult.from_json(path)
    name = args.calculator or result.calculator
    calc = get_calculator(name)
    out = {"system": result.system_id, "path": path, "calculator": name, "reference_calculator": result.calculator,
           "reference_calls": int(result.cost.get("calls", 0)) if result.cost else None, "temperatures": {}}
    for temperature in args.temperatures:
        t0 = time.perf_counter()
        corrections = anharmonic_corrections(
            result, calc, temperature, num_samples=args.num_samples, max_samples=args.max_samples,
            target_stderr=args.target_stderr, min_effective_samples=args.min_effective_samples, seed=args.seed,
            widen=args.widen, batch_size=args.batch_size)
        out["temperatures"][f"{temperature:g}K"] = {
            "harmonic": [round(float(p), 4) for p in result.probabilities(temperature)],
            "anharmonic": [round(float(p), 4) for p in anharmonic_probabilities(result, corrections)],
            "harmonic_site_kinds": {k: round(v, 4) for k, v in sorted(result.site_probabilities(temperature).items())},
            "anharmonic_site_kinds": {k: round(v, 4) for k, v in anharmonic_site_probabilities(result, corrections).items()},
            "converged": all(c.converged for c in corrections),
            "calls": sum(c.calls for c in corrections),
            "seconds": round(time.perf_counter() - t0, 1),
            "minima": [{"minimum": c.minimum, "kind": result.minima[c.minimum].site_kind,
                        "correction_eV": _finite(c.correction), "stderr_eV": _finite(c.stderr),
                        "in_basin": round(c.in_basin, 3), "effective_samples": round(c.effective_samples, 1),
                        "calls": c.calls, "converged": c.converged, "site_kinds": {k: round(v, 4) for k, v in (c.site_kinds or {}).items()}}
                       for c in corrections],
        }
    return out


def _finite(value: float) -> float | None:
    return round(float(value), 5) if np.isfinite(value) else None


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("results", nargs="+", help="reference result JSON files with vibrations (digmat reference / corpus)")
    parser.add_argument("--calculator", default=None, help="calculator name (default: each result's own; another one's energies are meaningless here)")
    parser.add_argument("-T", "--temperatures", type=float, nargs="+", default=[1200.0], help="K (default 1200)")
    parser.add_argument("--num-samples", type=at_least(2), default=64, help="draws per round and minimum (default 64)")
    parser.add_argument("--max-samples", type=at_least(2), default=512, help="draws per minimum at most (default 512)")
    parser.add_argument("--target-stderr", type=non_negative(), default=None, help="eV (default 0.05 k_BT)")
    parser.add_argument("--min-effective-samples", type=non_negative(), default=50.0, help="Kish ESS a basin's weights must reach (default 50)")
    parser.add_argument("--widen", type=float, default=1.5, help="proposal spread over the harmonic one, >= 1 (default 1.5)")
    parser.add_argument("--batch-size", type=at_least(1), default=4, help="structures per batched calculator call (default 4)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if not all(t > 0 for t in args.temperatures):
        parser.error("--temperatures must be positive (K)")
    if args.max_samples < args.num_samples:
        parser.error("need --max-samples >= --num-samples")
    if not args.widen >= 1:
        parser.error("--widen must be >= 1")
    for path in args.results:
        if not os.path.isfile(path):
            parser.error(f"no such reference result: {path}")
    try:  # the name and its package, before any result is read
        check_calculators(("--calculator", args.calculator))
    except ValueError as err:
        parser.error(str(err))
    systems = [run_system(path, args) for path in args.results]
    out = {"systems": systems, "config": vars(args),
           "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "torch": torch.__version__,
                       "threads": torch.get_num_threads()}}
    print(json.dumps(out, indent=1))
    return out


if __name__ == "__main__":
    main()
