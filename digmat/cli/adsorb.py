"""``digmat adsorb SLAB ADSORBATE``: equilibrium adsorbate configurations, sites and their probabilities.

Reads the slab with ``ase.io`` (or takes every row of an ASE database with ``--db``), samples
configurations from the adsorption model at ``--temperature``, groups them into sites and writes
``configurations.extxyz``, ``sites.json`` and ``sites.png`` into ``--out`` (one sub-folder per
database row). ``--json`` prints the summary to stdout.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

from digmat.cli.io import add_model_arguments, load_model_from_args
from digmat.cli.options import SLAB_HELP, add_out_option, at_least, check_calculators, check_output_dir, load_slab


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("slab", nargs="?", help=SLAB_HELP + "; omit with --db")
    parser.add_argument("adsorbate", help="adsorbate: G2 name (CH3CO), OC20 name (*OH) or a structure file")
    add_model_arguments(parser)
    parser.add_argument("-n", "--num-samples", type=at_least(1), default=256, help="number of samples (default 256)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sampler", choices=("ode", "sde"), default="ode", help="probability-flow ODE (default) or DiG's reverse SDE")
    parser.add_argument("--steps", type=at_least(1), default=None, help="sampler steps (default: 25 Heun steps = 49 evaluations; SDE 500)")
    parser.add_argument("--relax", default=None, metavar="CALC", help="relax each site's representative with this calculator (emt, chgnet, sevenn)")
    parser.add_argument("--density", action="store_true", help="also compute every sample's log-density with the probability-flow ODE (slower)")
    parser.add_argument("--refine", default=None, metavar="CALC", help="calculator-verified populations: relax representatives of every site with CALC and weigh the minima by harmonic free energy")
    parser.add_argument("--refine-per-site", type=at_least(1), default=2, metavar="K", help="representatives relaxed per site with --refine (default 2)")
    parser.add_argument("--reweight", default=None, metavar="CALC", help="importance-reweight the samples to CALC's Boltzmann distribution (implies --density; one energy call per sample)")
    add_out_option(parser, "adsorb_out")
    parser.add_argument("--db", default=None, help="ASE database: read slabs from its rows (SLAB omitted) and write the sampled configurations back")


def _slabs(args) -> tuple[list[tuple[str, object]], dict[str, str]]:
    """``([(name, slab)], {name: reason})``: the slabs to sample and, with ``--db``, the rows refused."""
    if args.db is None:
        if args.slab is None:
            raise ValueError("give a SLAB file, or --db with a database of slabs")
        name = Path(args.slab).stem if Path(args.slab).exists() else re.sub(r"[^A-Za-z0-9]+", "-", args.slab).strip("-")
        return [(name, load_slab(args.slab))], {}
    if args.slab is not None:
        raise ValueError("give either a SLAB file or --db, not both")
    from ase.db import connect

    from digmat.adsorption import infer_tags, validate_slab

    if not Path(args.db).is_file():
        raise FileNotFoundError(f"no database at {args.db}")
    rows, bad = [], {}
    with connect(args.db) as db:
        for row in db.select():
            if row.get("digmat_sample"):  # samples written back by an earlier run
                continue
            try:
                atoms = row.toatoms()
                if not (atoms.get_tags() == 1).any():
                    atoms = infer_tags(atoms)
                validate_slab(atoms[atoms.get_tags() != 2])
            except ValueError as exc:
                bad[f"row{row.id}"] = str(exc)
                continue
            rows.append((f"row{row.id}", atoms))
    if not rows and not bad:
        raise ValueError(f"{args.db} has no slab rows")
    return rows, bad


def run(args: argparse.Namespace) -> int:
    from digmat.adsorption import get_adsorbate
    from digmat.core import SampleConfig
    from digmat.tasks.sampling import DEFAULT_STEPS, sample_adsorbates

    sampling = SampleConfig(args.sampler, args.steps, seed=args.seed, progress=not args.json)
    sampling.sampler_config(DEFAULT_STEPS, "ode")  # refuses e.g. --steps 1 with the ODE now
    check_calculators(("--relax", args.relax), ("--refine", args.refine), ("--reweight", args.reweight))
    get_adsorbate(args.adsorbate)
    slabs, bad = _slabs(args)
    check_output_dir(args.out)
    model = load_model_from_args(args)
    sampling = SampleConfig.build(sampling, device=str(next(model.parameters()).device))
    summaries = []
    for name, slab in slabs:
        try:
            result = sample_adsorbates(
                slab, args.adsorbate, model, sampling, num_samples=args.num_samples, temperature=args.temperature,
                log_density=args.density or args.reweight is not None, relax=args.relax,
            )
        except ValueError as exc:
            if args.db is None:
                raise
            bad[name] = str(exc)  # one bad row does not stop the others
            continue
        if args.refine is not None:
            result.refine(args.refine, per_site=args.refine_per_site, progress=not args.json)
        if args.reweight is not None:
            result.reweight(args.reweight, progress=not args.json)
        out_dir = Path(args.out) / name if args.db is not None else Path(args.out)
        paths = result.write(out_dir)
        summary = result.summary() | {"outputs": {k: str(v) for k, v in paths.items()}, "slab": name}
        summaries.append(summary)
        if args.db is not None:
            _write_db(args.db, name, result, args)
        if not args.json:
            _print(summary)
    if args.db is not None:
        report = {"database": args.db, "rows_sampled": [s["slab"] for s in summaries], "rows_refused": bad, "slabs": summaries}
        if args.json:
            print(json.dumps(report, indent=2))
        for name, reason in bad.items():
            print(f"digmat adsorb: {args.db} {name} refused: {' '.join(reason.split())}", file=sys.stderr)
        return 1 if bad else 0
    if args.json:
        print(json.dumps(summaries[0], indent=2))
    return 0


def _write_db(path: str, slab_name: str, result, args: argparse.Namespace) -> None:
    """Write the samples of one slab row back, replacing an earlier run's samples of the same
    row, adsorbate and temperature (a rerun leaves the same rows, not duplicates)."""
    from ase.db import connect

    model = str(args.model or "adsorption")  # a path, or a shipped model's name
    key = {"digmat_sample": 1, "slab": slab_name, "adsorbate": str(args.adsorbate), "temperature": float(args.temperature)}
    with connect(path) as db:
        old = [row.id for row in db.select(**key)]
        if old:
            db.delete(old)
        for atoms in result.configurations:
            db.write(atoms, **key, seed=int(args.seed), model=model, sampler=result.sampler, site=int(atoms.info["site"]),
                     kind=atoms.info["kind"], log_density=float(atoms.info["log_density"]))


def _print(summary: dict) -> None:
    print(f"{summary['system']} at {summary['temperature_K']:g} K: {summary['samples']} samples, "
          f"{summary['network_evaluations_per_sample']} network evaluations each, {summary['seconds']:.1f} s")
    refine, reweight = summary.get("refine"), summary.get("reweight")
    head = f"{'site':>4}  {'kind':<11} {'binds':<14} {'probability':>11}  {'95% interval':<15} {'mean log p':>10}  {'energy (eV)':>11}"
    head += f"  {'refined':>8}" if refine else ""
    head += f"  {'reweighted':>10}" if reweight else ""
    print(head)
    for s in summary["sites"]:
        lo, hi = s["interval"]
        ld = "" if s["mean_log_density"] is None else f"{s['mean_log_density']:.2f}"
        en = "" if s["energy"] is None else f"{s['energy']:.3f}"
        row = f"{s['label']:>4}  {s['kind']:<11} {'-'.join(s['binding_symbols']) or '-':<14} {s['probability']:>11.3f}  [{lo:.3f}, {hi:.3f}]  {ld:>10}  {en:>11}"
        row += f"  {s['refined_probability']:>8.3f}" if refine else ""
        row += f"  {s['reweighted_probability']:>10.3f}" if reweight else ""
        print(row)
    if refine:
        extra = [m for m in refine["minima"] if m["site"] is None]
        print(f"refined with {refine['calculator']}: {len(refine['minima'])} minima from {len(refine['representatives'])} relaxations, "
              f"{refine['calls']} calculator calls" + (f"; {len(extra)} minima on sites no sample visited "
              f"(p = {sum(m['probability'] for m in extra):.3f})" if extra else ""))
    if reweight:
        print(f"reweighted with {reweight['calculator']}: {reweight['calls']} calculator calls, effective sample size {reweight['effective_sample_size']:.1f}")
    print(f"wrote {', '.join(summary['outputs'].values())}", file=sys.stderr)
