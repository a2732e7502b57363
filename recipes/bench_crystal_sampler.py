"""Benchmark crystal score models and samplers: sample quality and speed under several settings.

For every ``--model`` (repeatable) and every ``--sampler METHOD:STEPS[:GRID_POWER[:MOVES:SNR:T_MAX]]``
(the last three: a Langevin corrector, ``digmat.core.LangevinCorrector``; the first model with the
first sampler is the baseline) draw ``-n``
crystals from the same seed and report validity, StructureMatcher match rates and mean
normalised r.m.s.d. against the reference set (CDVAE's loose and pymatgen's default
tolerances), the 10/50/90 % nearest-neighbour distances beside the reference set's, with
``--gaps`` the tight-binding gap share above 0.5 eV, and seconds per sample — each as a ratio to
the baseline. Prints one JSON document with the machine.

Usage::

    python recipes/bench_crystal_sampler.py --model runs/carbon/score/model.pt -n 48 \\
        --sampler sde:200 --sampler sde:1000 --sampler sde:200:3 --sampler ode:100 --gaps
    # predictor-corrector: 2 Langevin moves at snr 0.1 after every step that lands at t <= 0.05
    python recipes/bench_crystal_sampler.py --model carbon24 -n 100 --sampler sde:200 --sampler sde:200:1:2:0.1:0.05
    # two models, same seeds and sampler: the shipped one is the baseline
    python recipes/bench_crystal_sampler.py --model carbon24 --model runs/carbon/new/model.pt -n 200 --sampler sde:200 --gaps
    # reference: the Carbon-24 training representatives (--data-dir), or any structure
    # collection digmat.design.read_structures reads (--reference: CSV, extxyz, ASE db, CIF folder)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import numpy as np
import torch

QUALITY = ("validity", "match_rate_loose", "mean_rms_loose", "match_rate_strict", "mean_rms_strict", "uniqueness", "nn_distance_quantiles")


def parse_sampler(text: str):
    """``"sde:200"`` / ``"sde:200:3"`` / ``"ode:100"`` / ``"sde:200:1:2:0.1:0.05"`` -> SamplerConfig
    (a clear error otherwise)."""
    from digmat.core import LangevinCorrector
    from digmat.design.generate import SamplerConfig

    parts = text.split(":")
    try:
        if len(parts) not in (2, 3, 6):
            raise ValueError
        corrector = LangevinCorrector(int(parts[3]), float(parts[4]), float(parts[5])) if len(parts) == 6 else None
        return SamplerConfig(parts[0], int(parts[1]), float(parts[2]) if len(parts) >= 3 else 1.0, corrector=corrector)
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"{text!r}: a sampler is METHOD:STEPS[:GRID_POWER[:MOVES:SNR:T_MAX]], e.g. sde:200, sde:200:3 "
                                         f"or sde:200:1:2:0.1:0.05. {err}".rstrip()) from None


def sampler_label(sampler) -> str:
    """The inverse of :func:`parse_sampler`."""
    label = f"{sampler.method}:{sampler.steps}:{sampler.grid_power:g}"
    if sampler.corrector is not None:
        label += f":{sampler.corrector.steps}:{sampler.corrector.snr:g}:{sampler.corrector.t_max:g}"
    return label


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, action="append", help="crystal score model checkpoint or shipped name (repeatable; first = baseline)")
    parser.add_argument("--sampler", type=parse_sampler, action="append", help="METHOD:STEPS[:GRID_POWER[:MOVES:SNR:T_MAX]] (repeatable; first = baseline)")
    parser.add_argument("-n", type=int, default=48, help="samples per setting")
    parser.add_argument("--num-atoms", type=int, default=None, help="atoms per cell (default: the model's training distribution)")
    parser.add_argument("--reference", default=None, help="structure collection to match against (default: Carbon-24 training set)")
    parser.add_argument("--data-dir", default=None, help="Carbon-24 CSV folder (when --reference is not given)")
    parser.add_argument("--gaps", action="store_true", help="tight-binding gap of every valid sample (carbon)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.n < 1:
        parser.error("-n must be >= 1")

    from digmat.design import read_structures
    from digmat.design.evaluate import LOOSE, STRICT, Matcher, evaluate_samples, is_valid, nn_distance_quantiles
    from digmat.design.generate import SamplerConfig, sample_crystals
    from digmat.models import CrystalScoreModel

    samplers = args.sampler or [SamplerConfig("sde", 200), SamplerConfig("sde", 200, 3.0)]
    models = {name: CrystalScoreModel.from_checkpoint(name) for name in args.model}
    if args.reference:
        reference = read_structures(args.reference)
    else:
        from digmat.design.carbon24 import load_carbon24

        reference = load_carbon24(args.data_dir, split="train")
    matchers = {"loose": Matcher(reference, **LOOSE), "strict": Matcher(reference, **STRICT)}
    oracle = None
    if args.gaps:
        from digmat.design.bandgap import TightBindingGap

        oracle = TightBindingGap(progress=False, on_error="nan")

    rows = []
    for (name, model), sampler in ((m, s) for m in models.items() for s in samplers):
        t0 = time.perf_counter()
        samples = sample_crystals(model, args.n, num_atoms=args.num_atoms, sampler=sampler, seed=args.seed)
        seconds = time.perf_counter() - t0
        gaps = np.full(args.n, np.nan)
        valid = np.flatnonzero([is_valid(a)[0] for a in samples])
        if oracle is not None and len(valid):
            gaps[valid] = oracle([samples[i] for i in valid])
        result = evaluate_samples(samples, gaps, reference=matchers)
        row = {"model": name, "sampler": sampler_label(sampler), "seconds_per_sample": seconds / args.n,
               **{k: result.get(k) for k in QUALITY}}
        if oracle is not None:
            row["share_gap_above_0.5"] = float(np.mean(np.nan_to_num(gaps) > 0.5))
        rows.append(row)
    base = rows[0]
    for row in rows:
        row["ratio_to_baseline"] = {k: row[k] / base[k] for k in ("seconds_per_sample", "validity", "match_rate_loose") if base[k]}
    machine = {"platform": platform.platform(), "cpus": os.cpu_count(), "torch": torch.__version__, "threads": torch.get_num_threads()}
    out = {"models": list(args.model), "n": args.n, "seed": args.seed, "reference": {"n": len(reference), "source": args.reference or "carbon24 train",
           "nn_distance_quantiles": nn_distance_quantiles(reference)},
           "baseline": {"model": base["model"], "sampler": base["sampler"]}, "runs": rows, "machine": machine}
    print(json.dumps(out, indent=1))
    return out


if __name__ == "__main__":
    torch.set_num_threads(1)
    main()
