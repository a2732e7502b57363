"""``digmat generate``: crystals from a crystal score model, unguided or band-gap guided.

Draws ``-n`` crystals (atom counts from the model's training distribution unless
``--num-atoms``) with the shipped ``carbon24`` model or any crystal checkpoint; ``--gap C``
guides them towards a band gap of C eV with a predictor's gradient (positions and lattice).
Writes ``crystals.extxyz`` (info: ``sample_index``, ``num_atoms``, ``valid``, ``space_group``,
``predicted_gap`` with a predictor, ``tb_gap`` with ``--oracle``) and ``generate.json``.
"""

from __future__ import annotations

import argparse
from dataclasses import asdict

from digmat.cli.io import finish
from digmat.cli.options import add_device_option, add_json_option, add_out_option, at_least, check_output_dir, non_negative, positive, resolve_device


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default="carbon24", help="crystal checkpoint path or shipped model name (default carbon24)")
    parser.add_argument("-n", "--num-samples", type=at_least(1), default=10, help="crystals to draw (default 10)")
    parser.add_argument("--num-atoms", type=at_least(1), default=None, help="atoms per cell (default: drawn from the training distribution)")
    parser.add_argument("--element", default=None, help="chemical symbol (default: the model's only element)")
    parser.add_argument("--gap", type=non_negative(float), default=None, help="target band gap, eV (guided sampling)")
    parser.add_argument("--predictor", default="carbon24_gap", help="band-gap predictor: checkpoint, matgl directory or shipped name")
    parser.add_argument("--width", type=positive(float), default=0.5, help="likelihood width w around the prediction, eV (default 0.5)")
    parser.add_argument("--scale", type=non_negative(float), default=1.0, help="guidance scale lambda (default 1)")
    parser.add_argument("--guide-below", type=positive(float), default=None, metavar="ANGSTROM",
                        help="guide only where the positional noise is at most this many Å (default: at every noise level)")
    parser.add_argument("--sampler", choices=("sde", "ode"), default="sde")
    parser.add_argument("--steps", type=at_least(1), default=200, help="sampler steps (default 200)")
    parser.add_argument("--grid-power", type=positive(float), default=None,
                        help="SDE step grid t = u^p (p > 1: more steps at low noise; default 3 for the SDE, 1 for the ODE)")
    parser.add_argument("--corrector", type=non_negative(int), default=None, metavar="MOVES",
                        help="Langevin corrector moves after each SDE step below --correct-below (default 5 for the SDE; 0: none)")
    parser.add_argument("--snr", type=positive(float), default=None, help="corrector signal-to-noise ratio (default 0.2)")
    parser.add_argument("--correct-below", type=positive(float), default=None, metavar="ANGSTROM",
                        help="correct only where the positional noise is at most this many Å (default 0.3)")
    parser.add_argument("--oracle", action="store_true", help="tight-binding band gap of every valid sample (carbon)")
    parser.add_argument("--seed", type=int, default=0)
    add_device_option(parser)
    add_out_option(parser, "generate_out")
    add_json_option(parser)


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from digmat.design.evaluate import is_valid, nn_distance_quantiles, space_group
    from digmat.design.generate import GapGuidance, crystal_sampler, sample_crystals
    from digmat.models import CrystalScoreModel

    device = resolve_device(args.device)
    check_output_dir(args.out)
    guidance = None if args.gap is None else GapGuidance(args.gap, width=args.width, scale=args.scale, max_noise=args.guide_below)
    model = CrystalScoreModel.from_checkpoint(args.model).to(device)
    sampler = crystal_sampler(model, args.sampler, args.steps, grid_power=args.grid_power, corrector=args.corrector, snr=args.snr,
                              correct_below=args.correct_below)
    predictor = None
    if guidance is not None:
        from digmat.design.predictor import BandGapPredictor

        predictor = BandGapPredictor.load(args.predictor).to(device).eval()
    crystals = sample_crystals(model, args.num_samples, num_atoms=args.num_atoms, element=args.element, predictor=predictor, guidance=guidance,
                               sampler=sampler, seed=args.seed, device=str(device), progress=not args.json)
    valid = [is_valid(a)[0] for a in crystals]
    for atoms, ok in zip(crystals, valid):
        atoms.info["valid"] = ok
        if ok:
            atoms.info["space_group"] = space_group(atoms)[1]
    good = [a for a, ok in zip(crystals, valid) if ok]
    if predictor is not None and good:
        for atoms, gap in zip(good, predictor.predict_atoms(good)):
            atoms.info["predicted_gap"] = float(gap)
    if args.oracle and good:
        from digmat.design.bandgap import TightBindingGap

        for atoms, gap in zip(good, TightBindingGap(progress=False, on_error="nan")(good)):
            atoms.info["tb_gap"] = float(gap)
    summary = {"model": str(args.model), "num_samples": args.num_samples, "target_gap_eV": args.gap, "sampler": asdict(sampler), "seed": args.seed,
               "validity": float(np.mean(valid)), "num_atoms": [len(a) for a in crystals]}
    if good:
        summary["nn_distance_quantiles_A"] = nn_distance_quantiles(good)
    for key in ("predicted_gap", "tb_gap"):
        values = [a.info[key] for a in good if key in a.info]
        if values:
            summary[f"{key}_mean_eV"] = float(np.nanmean(values))
    files = {"crystals": ("crystals.extxyz", crystals), "summary": ("generate.json", summary)}

    def table(summary: dict) -> None:
        for a in crystals:
            extra = "".join(f"  {k} {a.info[k]:.2f} eV" for k in ("predicted_gap", "tb_gap") if k in a.info)
            state = a.info.get("space_group", "invalid")
            print(f"sample {a.info['sample_index']:3d}: {a.get_chemical_formula()}  {a.get_volume() / len(a):.2f} A^3/atom  {state}{extra}")
        print(f"validity {summary['validity']:.2f}; written to {args.out}")

    return finish(args, summary, files, table)
