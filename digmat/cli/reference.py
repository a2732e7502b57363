"""``digmat reference``: reference adsorption-site search of an adsorbate on a slab.

Places the adsorbate on pymatgen's site-finder sites and at random points
(AdsorbML), relaxes every placement with the chosen calculator, discards
anomalies, merges equivalent minima and reports each minimum's energy, site,
multiplicity, harmonic free energy and Boltzmann probability at the given
temperatures.  Writes ``OUT/reference.json`` and ``OUT/minima.extxyz``
(``--structures minima.db`` for an ASE database); relaxations are cached in
``OUT/work`` so an interrupted run resumes where it stopped.
"""

from __future__ import annotations

import argparse
import json

from digmat.cli.options import (
    SLAB_HELP,
    add_device_option,
    add_json_option,
    add_out_option,
    add_temperature_option,
    at_least,
    check_calculators,
    check_output_dir,
    load_slab,
    positive,
    resolve_device,
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("slab", metavar="SLAB", help=SLAB_HELP)
    parser.add_argument("adsorbate", metavar="ADSORBATE",
                        help="adsorbate: OC20 name (*OH), ASE molecule (CO), element (O) or file")
    parser.add_argument("--calculator", default="chgnet", help="emt, chgnet or sevenn (default chgnet)")
    add_device_option(parser, what="the potential")
    add_temperature_option(parser, default=[300.0, 600.0, 1200.0], several=True)
    parser.add_argument("--random", type=at_least(0), default=100, metavar="N",
                        help="random placements (default 100, as AdsorbML)")
    parser.add_argument("--no-heuristic", action="store_true", help="skip the site-finder placements")
    parser.add_argument("--fixed-surface", action="store_true", help="keep the surface atoms fixed")
    parser.add_argument("--fmax", type=positive(float), default=0.05, help="force convergence, eV/Å (default 0.05)")
    parser.add_argument("--max-steps", type=at_least(1), default=300, help="optimizer steps (default 300)")
    parser.add_argument("--workers", type=at_least(1), default=1, help="worker processes (default 1)")
    parser.add_argument("--threads", type=at_least(1), default=1, help="torch threads per worker (default 1)")
    parser.add_argument("--scheduler", default=None, metavar="ADDRESS",
                        help="fan out on dask.distributed: 'local' (a LocalCluster of --workers processes) "
                             "or a running scheduler's address (tcp://host:8786)")
    parser.add_argument("--seed", type=int, default=0, help="placement seed (default 0)")
    parser.add_argument("--no-vibrations", action="store_true", help="skip Hessians (F_vib = 0)")
    parser.add_argument("--vib-surface", action="store_true", help="include surface atoms in the Hessian")
    parser.add_argument("--hessian-delta", type=positive(float), default=0.01, metavar="Å",
                        help="finite-difference displacement of the Hessians, Å (default 0.01)")
    parser.add_argument("--budget", type=at_least(0), default=None,
                        help="at most this many new relaxations in this run (resume later)")
    add_out_option(parser, "reference")
    parser.add_argument("--structures", default="minima.extxyz",
                        help="structure file name in OUT (.extxyz, or .db for an ASE database)")
    add_json_option(parser)


def _summary(result) -> dict:
    e0 = min((m.energy for m in result.minima), default=0.0)
    return {
        "system_id": result.system_id, "calculator": result.calculator, "complete": result.complete,
        "placements": len(result.placements),
        "anomalies": {flag: sum(flag in p.flags for p in result.placements)
                      for flag in sorted({f for p in result.placements for f in p.flags})},
        "minima": [
            {"site_kind": m.site_kind, "energy": m.energy, "relative_energy": round(m.energy - e0, 6),
             "binding": m.binding_symbols, "multiplicity": m.multiplicity, "flags": m.flags,
             "probability": {f"{t:g}": m.probability.get(t) for t in result.temperatures}}
            for m in result.minima
        ],
        "site_probabilities": ({f"{t:g}": result.site_probabilities(t) for t in result.temperatures}
                               if result.minima else {}),
        "cost": result.cost,
    }


def search_settings(args: argparse.Namespace):
    """The :class:`SearchConfig` and :class:`ExecutionConfig` of the command line."""
    from digmat.adsorption import ExecutionConfig, SearchConfig

    config = SearchConfig(temperatures=tuple(args.temperature), num_random=args.random, heuristic=not args.no_heuristic,
                          relax_surface=not args.fixed_surface, fmax=args.fmax, max_steps=args.max_steps, seed=args.seed,
                          vibrations=not args.no_vibrations, vib_surface=args.vib_surface,
                          hessian_delta=args.hessian_delta)
    execution = ExecutionConfig(workers=args.workers, threads=args.threads, device=str(resolve_device(args.device)), scheduler=args.scheduler)
    return config, execution


def run(args: argparse.Namespace) -> int:
    from digmat.adsorption import get_adsorbate
    from digmat.adsorption.reference import reference_search

    check_calculators(("--calculator", args.calculator))
    config, execution = search_settings(args)
    slab = load_slab(args.slab)
    adsorbate = get_adsorbate(args.adsorbate)
    out = check_output_dir(args.out)
    result = reference_search(slab, adsorbate, args.calculator, config, execution=execution, work_dir=out / "work",
                              budget=args.budget, progress=not args.json)
    result.to_json(out / "reference.json")
    if result.minima:
        result.write_structures(out / args.structures)
    if args.json:
        print(json.dumps(_summary(result), indent=2))
    else:
        print(result.summary())
        print(f"calculator calls: {result.cost['calls']}, wall time {result.cost['wall_seconds']:.1f} s; "
              f"wrote {out / 'reference.json'}" + (f" and {out / args.structures}" if result.minima else ""))
        if not result.complete:
            print("incomplete: the budget was reached; run the same command again to continue")
    return 0 if result.complete else 3
