"""Band-gap-guided generation of carbon crystals, validated (DiG's inverse-design demonstration).

For the unguided model and every ``--target`` gap c (eV): draw ``-n`` crystals (atom counts from
the training distribution), optionally relax them (``--relax chgnet``), and report validity,
StructureMatcher match rate and mean normalised r.m.s.d. against the training set (CDVAE's loose
and pymatgen's default tolerances), uniqueness, novelty, spglib space groups, the tight-binding
oracle's gap of every sample, nearest-neighbour distances beside the training set's, and the
share of samples within c ± 0.5 eV against the unguided share. Writes
``<out>/<run>/sample_XXX.cif``, ``<out>/summary.json`` and ``<out>/gap_histograms.png``
(training set, unguided, each target). Each finished run (samples judged, CIFs written) is kept in
``<out>/runs.json`` with digests of the two networks' weights; rerunning the same command with the
same weights skips those runs, so a full run (about 4 CPU-hours here with the default sampler)
survives an interruption. ``--relax`` on a rerun relaxes the kept runs' samples instead of drawing
new ones, writing each relaxed CIF as it finishes (``<out>/<run>_relaxed/``), so it resumes too.

The shipped models ``carbon24`` and ``carbon24_gap`` (``digmat/pretrained/carbon24.md``) are the
defaults; without the Carbon-24 CSVs (``--data-dir`` or ``$DIGMAT_CARBON24``) everything but the
matching against the training set still runs.

Usage::

    python recipes/bandgap_carbon.py --target 0 --target 6 -n 200 --out runs/carbon/bandgap
    # your own models
    python recipes/train_carbon.py score --out runs/carbon/score
    python recipes/train_carbon.py predictor --out runs/carbon/predictor.pt --members
    python recipes/bandgap_carbon.py --model runs/carbon/score/model.pt \\
        --predictor runs/carbon/predictor.pt --target 0 --target 6 -n 200 --out runs/carbon/bandgap
    # end-to-end check on structures built in memory (tiny model and predictor, < 1 min):
    python recipes/bandgap_carbon.py --smoke --out /tmp/bandgap_smoke
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch


def smoke_setup(out: Path, seed: int):
    """Tiny score model and predictor trained in seconds on built-in carbon prototypes."""
    from digmat.design.carbon24 import carbon_prototypes
    from digmat.design.generate import train_crystal_model
    from digmat.design.predictor import BandGapPredictor, FitConfig, default_m3gnet, fit_predictor
    from digmat.design.bandgap import TightBindingGap
    from digmat.models import CrystalModelConfig
    from digmat.nn import GraphormerConfig
    from digmat.train import TrainConfig

    train = carbon_prototypes(rattled=1, seed=seed)
    for atoms, gap in zip(train, TightBindingGap(progress=False)(train)):
        atoms.info["tb_gap"] = float(gap)
    net = GraphormerConfig(num_layers=2, embed_dim=32, num_heads=4, ffn_dim=64, num_rbf=16, cutoff=4.0, num_tags=1, scalar_out=8, scalar_pool="none")
    model, _ = train_crystal_model(train, out / "smoke_model", config=CrystalModelConfig(network=net),
                                   train_config=TrainConfig(steps=30, batch_size=8, warmup_steps=5, log_every=10, checkpoint_every=1000, seed=seed))
    torch.manual_seed(seed)
    predictor = BandGapPredictor(default_m3gnet(("C",), cutoff=4.0, width=16, blocks=1))
    fit_predictor(predictor, train, [a.info["tb_gap"] for a in train], config=FitConfig(epochs=10, batch_size=8, lr=5e-3, seed=seed))
    return model, predictor, train


def weights_digest(module: torch.nn.Module) -> str:
    """A short digest of a network's weights: kept runs are reused only with the same weights."""
    h = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def read_run(folder: Path, n: int) -> list:
    """A kept run's samples from its CIFs (``sample_XXX.cif``)."""
    from ase.io import read

    return [read(folder / f"sample_{i:03d}.cif") for i in range(n)]


def relax_into(structures: list, folder: Path, calculator, name: str) -> list:
    """Relaxed copies of ``structures``, each written to ``folder/sample_XXX.cif`` as it finishes.

    Relaxations already in ``folder`` are read back instead of repeated, so an interrupted
    relaxation resumes; ``folder/relaxed.json`` names the calculator ``name`` that made them.
    """
    from ase.io import read, write

    from digmat.design.evaluate import relax
    from digmat.files import atomic_path

    folder.mkdir(parents=True, exist_ok=True)
    stamp = folder / "relaxed.json"
    made_by = json.loads(stamp.read_text())["calculator"] if stamp.is_file() else None
    if made_by not in (None, name):
        raise SystemExit(f"error: {folder} holds relaxations by {made_by}, not {name}: use another --out")
    if made_by is None:
        with atomic_path(stamp) as tmp:
            tmp.write_text(json.dumps({"calculator": name}))
    relaxed = []
    for i, atoms in enumerate(structures):
        path = folder / f"sample_{i:03d}.cif"
        if not path.is_file():
            with atomic_path(path) as tmp:
                write(tmp, relax([atoms], calculator)[0], format="cif")
        relaxed.append(read(path))  # read back: new and resumed relaxations are judged alike (CIF precision)
    return relaxed


def stored_gaps(samples: list[dict]) -> list[float]:
    """The oracle gaps (eV) of a kept run's samples, NaN where there is none (invalid samples)."""
    return [np.nan if s["gap"] is None else s["gap"] for s in samples]


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="carbon24", help="crystal score model checkpoint (default: the shipped carbon24)")
    parser.add_argument("--predictor", default="carbon24_gap", help="predictor checkpoint, matgl model directory, or shipped name")
    parser.add_argument("--target", type=float, action="append", help="target band gap, eV (repeatable; default 0 and 6)")
    parser.add_argument("-n", type=int, default=200, help="samples per run")
    parser.add_argument("--width", type=float, default=0.5, help="likelihood width w, eV")
    parser.add_argument("--scale", type=float, default=1.0, help="guidance scale lambda")
    parser.add_argument("--guide-below", type=float, default=None, metavar="ANGSTROM",
                        help="guide only where the positional noise is at most this (Å); default: at every noise level")
    parser.add_argument("--window", type=float, default=0.5, help="success window around the target, eV")
    parser.add_argument("--sampler", choices=("sde", "ode"), default="sde")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--grid-power", type=float, default=None, help="SDE step grid t = u^p (p > 1: more steps at low noise; default 3 for the SDE)")
    parser.add_argument("--corrector", type=int, default=None, metavar="MOVES",
                        help="Langevin corrector moves after each SDE step below --correct-below (default 5 for the SDE; 0: none)")
    parser.add_argument("--snr", type=float, default=None, help="corrector signal-to-noise ratio (default 0.2)")
    parser.add_argument("--correct-below", type=float, default=None, metavar="ANGSTROM", help="correct where the positional noise is at most this (default 0.3)")
    parser.add_argument("--batch-size", type=int, default=50)
    parser.add_argument("--relax", default=None, metavar="CALC",
                        help="also judge the samples relaxed with this calculator (e.g. chgnet); a rerun with --relax relaxes kept runs, resumably")
    parser.add_argument("--data-dir", default=None, help="Carbon-24 CSV folder (training set for matching)")
    parser.add_argument("--jobs", type=int, default=1, help="processes for the tight-binding oracle")
    parser.add_argument("--smoke", action="store_true", help="tiny model + predictor trained on built-in prototypes, few samples")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)

    from ase.io import write

    from digmat.calculators import get_calculator
    from digmat.design.evaluate import LOOSE, STRICT, Matcher, evaluate_samples, is_valid, nn_distance_quantiles, plot_gap_histograms, sp3_share
    from digmat.design.generate import GapGuidance, crystal_sampler, sample_crystals
    from digmat.design.bandgap import TightBindingGap
    from digmat.files import atomic_path

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    targets = args.target if args.target else [0.0, 6.0]
    if args.smoke:
        model, predictor, train = smoke_setup(out, args.seed)
        n, steps, source = min(args.n, 3), min(args.steps, 6), "smoke: carbon prototypes"
        train_gaps = [a.info["tb_gap"] for a in train]
    else:
        from digmat.design.carbon24 import carbon24_index, find_carbon24_dir, load_carbon24
        from digmat.design.predictor import BandGapPredictor
        from digmat.models import CrystalScoreModel

        model = CrystalScoreModel.from_checkpoint(args.model)
        predictor = BandGapPredictor.load(args.predictor)
        n, steps, source = args.n, args.steps, "carbon24 train representatives"
        train_gaps = [g["tb_gap"] for g in carbon24_index()["groups"] if g["split"] == "train"]  # shipped with the split
        train = load_carbon24(args.data_dir, split="train") if find_carbon24_dir(args.data_dir) else None
        if train is None:
            source = None
            print("Carbon-24 CSVs not found (--data-dir or DIGMAT_CARBON24): samples are not matched to the training set", file=sys.stderr)
    predictor.eval()
    sampler = crystal_sampler(model, args.sampler, steps, grid_power=args.grid_power, corrector=args.corrector, snr=args.snr, correct_below=args.correct_below)
    reference = {"loose": Matcher(train, **LOOSE), "strict": Matcher(train, **STRICT)} if train else None
    oracle = TightBindingGap(progress=False, on_error="nan", n_jobs=args.jobs)
    summary: dict = {"settings": {**vars(args), "targets": targets, "n": n, "steps": sampler.steps, "sampler_config": asdict(sampler), "reference": source,
                                  "likelihood": "p(c|x_t) = N(c; f(R(x0_hat)), w^2 + sum_d r_d^2 (df/dx0_d)^2)"},
                     "runs": {}}
    gap_sets = {"training set": train_gaps}
    summary["training_set"] = {"n": len(train_gaps)}
    if train:
        summary["training_set"]["nn_distance_quantiles"] = nn_distance_quantiles(train)
        summary["training_set"]["sp3_share"] = float(np.mean([sp3_share(a) for a in train]))
    runs = [("unguided", None)] + [(f"target_{c:g}", GapGuidance(c, width=args.width, scale=args.scale, max_noise=args.guide_below)) for c in targets]
    # resumable: each finished run is kept in OUT/runs.json; a rerun with the same settings skips it
    done_path = out / "runs.json"
    # --relax is not part of the key: relaxing is added to kept runs (older files name it in their settings)
    key = json.loads(json.dumps({k: v for k, v in vars(args).items() if k not in ("out", "jobs", "relax")}, default=str))
    # the settings name the models; the digests say which weights those names had (smoke: trained in memory)
    weights = None if args.smoke else {"model": weights_digest(model), "predictor": weights_digest(predictor)}
    stored = json.loads(done_path.read_text()) if done_path.is_file() else {}
    done = stored.get("runs", {}) if {k: v for k, v in stored.get("settings", {}).items() if k != "relax"} == key else {}
    if done and stored.get("weights", weights) != weights:  # files from before the digests carry none
        print(f"{done_path} holds runs of other weights of the same models: sampling them again", file=sys.stderr)
        done = {}
    reference_gaps = [a.info["tb_gap"] for a in train] if train else None
    for name, run in done.items():  # before any work: kept relaxations by another calculator are not mixed in
        if args.relax and run.get("relaxed", {}).get("calculator", args.relax) != args.relax:
            raise SystemExit(f"error: {done_path} holds {name} relaxed with {run['relaxed']['calculator']}, not {args.relax}: use another --out")
    calculator = None

    def keep():
        with atomic_path(done_path) as tmp:
            tmp.write_text(json.dumps({"settings": key, "weights": weights, "runs": done}, default=float))

    def judge(samples, target, gaps=None, **kwargs):
        """Oracle gaps (unless given), predictor gaps and every figure of one set of samples."""
        valid = [is_valid(a)[0] for a in samples]
        if gaps is None:
            gaps = np.full(len(samples), np.nan)
            if any(valid):
                gaps[np.flatnonzero(valid)] = oracle([a for a, ok in zip(samples, valid) if ok])
        predicted = predictor.predict_atoms([a for a, ok in zip(samples, valid) if ok]) if any(valid) else []
        result = evaluate_samples(samples, gaps, reference=reference, target=target, window=args.window, reference_gaps=reference_gaps, **kwargs)
        for i, p in zip(np.flatnonzero(valid), predicted):
            result["samples"][i]["predicted_gap"] = float(p)
        return result, gaps

    def rejudge(samples: list, kept: dict, target, **kwargs) -> dict:
        """A kept run's figures recomputed from its samples and stored oracle gaps (no sampling, no oracle)."""
        result, _ = judge(samples, target, gaps=np.array(stored_gaps(kept["samples"])), **kwargs)
        return {**kept, **result}
    for name, guidance in runs:
        label = name.replace("_", " ") + " eV" if guidance else name
        target = None if guidance is None else guidance.target
        generated = None
        if name in done:
            result = summary["runs"][name] = done[name]
            if reference and "sp3_share_of_matched" not in result:  # kept by a recipe before the matched-gap or sp3 figures
                generated = read_run(out / name, len(result["samples"]))
                result = summary["runs"][name] = done[name] = rejudge(generated, result, target)
                if "relaxed" in result:
                    relaxed = read_run(out / f"{name}_relaxed", len(result["relaxed"]["samples"]))
                    result["relaxed"] = rejudge(relaxed, result["relaxed"], target, generated=generated)
                keep()
            print(f"{name}: kept from {done_path}", file=sys.stderr)
        else:
            t0 = time.perf_counter()
            generated = sample_crystals(model, n, predictor=predictor, guidance=guidance, sampler=sampler, batch_size=args.batch_size, seed=args.seed)
            seconds = time.perf_counter() - t0
            result, _ = judge(generated, target)
            result["sampling_seconds"] = round(seconds, 1)
            summary["runs"][name] = done[name] = result
            folder = out / name
            folder.mkdir(exist_ok=True)
            for i, atoms in enumerate(generated):
                write(folder / f"sample_{i:03d}.cif", atoms, format="cif")
            keep()
            print(f"{name}: {n} samples in {seconds:.0f} s, judged and kept in {done_path}", file=sys.stderr, flush=True)
        if args.relax and "relaxed" not in result:  # the relaxed samples are judged too; the unrelaxed figures stay the run's headline
            if calculator is None:
                calculator = get_calculator(args.relax)
            generated = generated if generated is not None else read_run(out / name, len(result["samples"]))
            t1 = time.perf_counter()
            relaxed = relax_into(generated, out / f"{name}_relaxed", calculator, args.relax)
            result["relaxed"], _ = judge(relaxed, target, generated=generated)
            result["relaxed"].update(relax_seconds=round(time.perf_counter() - t1, 1), calculator=args.relax)
            keep()
            print(f"{name}: relaxed with {args.relax}, judged and kept", file=sys.stderr, flush=True)
        gap_sets[label] = stored_gaps(result["samples"])
        if "relaxed" in result:
            gap_sets[f"{label} ({result['relaxed'].get('calculator', args.relax)}-relaxed)"] = stored_gaps(result["relaxed"]["samples"])

    def share(samples: list[dict], c: float, gap: str = "gap") -> float:
        """Share of all samples whose ``gap`` (the oracle's, or ``"matched_gap"``: that of the closest
        loose training match) lies within c ± window."""
        return float(np.mean([s.get(gap) is not None and abs(s[gap] - c) <= args.window for s in samples]))

    unguided = summary["runs"]["unguided"]
    summary["targets"] = {}
    for c in targets:
        run = summary["runs"][f"target_{c:g}"]
        base = share(unguided["samples"], c)
        summary["targets"][f"{c:g}"] = {"share_within_window": run["share_within_window"], "unguided_share": base,
                                        "ratio": run["share_within_window"] / base if base > 0 else None,
                                        "match_rate_loose": run.get("match_rate_loose"), "match_rate_strict": run.get("match_rate_strict")}
        if "matched_share_within_window" in run:  # which structures guidance chose, whatever their precision
            intent = share(unguided["samples"], c, "matched_gap")
            summary["targets"][f"{c:g}"].update(matched_share_within_window=run["matched_share_within_window"], unguided_matched_share=intent,
                                                matched_ratio=run["matched_share_within_window"] / intent if intent > 0 else None)
        if "relaxed" in run:
            base = share(unguided["relaxed"]["samples"], c)
            within = run["relaxed"]["share_within_window"]
            summary["targets"][f"{c:g}"]["relaxed"] = {"share_within_window": within, "unguided_share": base, "ratio": within / base if base > 0 else None,
                                                      "match_rate_loose": run["relaxed"].get("match_rate_loose")}
    plot_gap_histograms(gap_sets, out / "gap_histograms.png", targets={f"{c:g}": c for c in targets})
    summary["seconds"] = round(time.perf_counter() - t_start, 1)
    with atomic_path(out / "summary.json") as tmp:
        tmp.write_text(json.dumps(summary, indent=2))
    keys = ("validity", "match_rate_loose", "mean_rms_loose", "match_rate_strict", "mean_rms_strict", "uniqueness", "novelty", "gap_mean",
            "gapped_share", "matched_gapped_share", "gapped_share_of_gapped_matches", "nn_distance_quantiles", "sp3_share",
            "sp3_share_of_matched", "matched_sp3_share", "self_match_rate_loose",
            "self_mean_rms_loose")
    brief = {}
    for k, v in summary["runs"].items():
        brief[k] = {m: v[m] for m in keys if m in v}
        if "relaxed" in v:
            brief[k + " (relaxed)"] = {m: v["relaxed"][m] for m in keys if m in v["relaxed"]}
    print(json.dumps({"training_set": summary["training_set"], "runs": brief, "targets": summary["targets"], "seconds": summary["seconds"]}, indent=2))
    return summary


if __name__ == "__main__":
    torch.set_num_threads(1)
    main()
