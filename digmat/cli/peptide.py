"""``digmat peptide``: conformational ensemble of a capped peptide from a sequence or a PDB file.

Draws ``-n`` conformations of ACE-SEQUENCE-NME (or of the peptide in a PDB file) at ``-T``
with the shipped ``peptide`` model or any peptide checkpoint, and reports each residue's
Ramachandran basins (β/C7eq, PII, αR, αL/C7ax) with populations, 95 % intervals and free
energies in kcal/mol.  ``--reweight`` importance-weights the samples with the force field
(ff14SB + GBn2): the model's exact log-density plus the energy, with the effective sample
size.  A sample with a steric clash is moved out of it by the smallest torsion change
(``--clashes relax``, default), redrawn (``reject``) or kept (``keep``); how often the model
clashed is reported.  Writes ``ensemble.pdb`` (one MODEL per sample), ``ensemble.extxyz``,
``ramachandran.png`` (with the reference's free-energy contours for a peptide the model was
trained on) and ``peptide.json``.  Needs the protein extra
(``pip install "digmat[protein]"``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from digmat.cli.io import finish
from digmat.cli.options import add_device_option, add_json_option, add_out_option, add_temperature_option, at_least, check_output_dir, resolve_device


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("peptide", help="one-letter sequence (ACE-…-NME is built), or a PDB file of a peptide")
    parser.add_argument("--model", default="peptide", help="peptide checkpoint path or shipped model name (default peptide)")
    parser.add_argument("-n", "--num-samples", type=at_least(1), default=1000, help="conformations to draw (default 1000)")
    add_temperature_option(parser, default=300.0)
    parser.add_argument("--sampler", choices=("sde", "ode"), default=None, help="reverse SDE (default, 200 steps) or ODE")
    parser.add_argument("--steps", type=at_least(1), default=None, help="sampler steps")
    parser.add_argument("--reweight", action="store_true", help="importance-weight with the force field and report the ESS")
    parser.add_argument("--clashes", choices=("relax", "reject", "keep"), default="relax",
                        help="a sample with a steric clash is moved out of it by the smallest torsion change (relax, "
                             "default), redrawn (reject) or kept; how often the model clashed is reported")
    parser.add_argument("--seed", type=at_least(0), default=0)
    add_device_option(parser)
    add_out_option(parser, "peptide_out")
    add_json_option(parser)


def _peptide(spec: str):
    from digmat.protein import check_sequence, read_peptide

    path = Path(spec)
    if path.suffix.lower() in (".pdb", ".ent") or path.is_file():
        if not path.is_file():
            raise FileNotFoundError(f"no such file: {spec}")
        return read_peptide(path)
    return check_sequence(spec)


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from digmat.protein import BASINS, require_protein_extra

    require_protein_extra()
    device = resolve_device(args.device)
    check_output_dir(args.out)
    peptide = _peptide(args.peptide)
    from digmat.pretrained import load_model
    from digmat.tasks.peptide_sampling import sample_peptides

    model = load_model(args.model, device=device)
    if getattr(model, "kind", None) != "peptide":
        raise ValueError(f"--model {args.model}: a {getattr(model, 'kind', '?')} model, not a peptide model")
    ensemble = sample_peptides(model, peptide, args.num_samples, temperature=args.temperature, sampler=args.sampler,
                               steps=args.steps, seed=args.seed, progress=not args.json,
                               clashes=args.clashes)
    if args.reweight:
        ensemble.reweight(model)
    summary = {"model": str(args.model), **ensemble.summary()}
    out = Path(args.out)
    histograms = getattr(model, "metadata", {}).get("reference_histograms", {})
    reference = histograms.get(ensemble.system.sequence)
    paths = ensemble.write(out, reference=None if reference is None else np.array(reference))
    summary["reference_contours"] = reference is not None

    def table(summary: dict) -> None:
        key = "reweighted_basins" if "reweighted_basins" in summary else "basins"
        print(f"ACE-{summary['sequence']}-NME at {summary['temperature_K']:g} K: {summary['num_samples']} samples "
              f"in {summary['seconds']:.1f} s, clash rate {summary['clash_rate']:.3f}")
        if "raw_clash_rate" in summary:
            what = {"relax": f"{summary['relaxed']} relaxed out of it", "reject": "redrawn"}[summary["clashes"]]
            print(f"{summary['draws']} drawn: {100 * summary['raw_clash_rate']:.1f} % had a steric clash ({what})")
        if "reweight" in summary:
            r = summary["reweight"]
            print(f"reweighted with the force field: effective sample size {r['effective_sample_size']:.0f} "
                  f"({100 * r['ess_ratio']:.1f} %)")
        for residue, rows in summary[key].items():
            print(f"residue {residue}:  basin       population   95% interval    F (kcal/mol)")
            for name in BASINS:
                row = rows[name]
                f = "   -" if row["free_energy_kcal_mol"] is None else f"{row['free_energy_kcal_mol']:6.2f}"
                print(f"            {name:9s}   {row['population']:8.3f}     [{row['ci95'][0]:.3f}, {row['ci95'][1]:.3f}]   {f}")
        print(f"written to {args.out}")

    summary["files"] = {k: str(v) for k, v in paths.items()}
    return finish(args, summary, {"summary": ("peptide.json", summary)}, table)
