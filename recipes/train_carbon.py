"""Train the Carbon-24 crystal score model or the M3GNet band-gap predictor.

Data: the shipped de-duplicated split (``digmat/design/data/carbon24_distinct.json``: 576 train /
64 held-out distinct structures) with structures from the Carbon-24 CSVs
(``--data-dir``, default ``../shared/data/carbon_24``).

Usage::

    # score model on the 576 training representatives (writes runs/carbon/score/model.pt)
    python recipes/train_carbon.py score --out runs/carbon/score --steps 2400
    # more steps on a new schedule, starting from that model's weights
    python recipes/train_carbon.py score --out runs/carbon/score2 --init runs/carbon/score/model.pt --steps 10000
    # band-gap predictor on the training groups' members (TB gaps), held-out MAE on the 64
    python recipes/train_carbon.py predictor --out runs/carbon/predictor.pt --epochs 6 --members --time-limit 840
    # ... that also sees displaced copies labelled with their own TB gaps (disorder closes the gap)
    python recipes/train_carbon.py predictor --out runs/carbon/predictor_noised.pt --epochs 6 --members --noised 0.02 0.05 0.1 0.2 --jobs 2
    # predictors' errors on displaced held-out copies and on a band-gap run's samples
    python recipes/train_carbon.py predictor-error --predictor carbon24_gap runs/carbon/predictor_noised.pt \
        --copies runs/carbon/predictor_noised.noised_heldout.extxyz --samples runs/carbon/bandgap_full
    # the score model's denoising error per positional noise level (JSON; 0 = exact, 1 = none)
    python recipes/train_carbon.py profile --model runs/carbon/score/model.pt --split heldout
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch


def train_score(args) -> None:
    from digmat.design.carbon24 import load_carbon24
    from digmat.design.generate import train_crystal_model
    from digmat.models import CrystalModelConfig, CrystalScoreModel
    from digmat.nn import GraphormerConfig
    from digmat.nn.cellnet import CellNetConfig
    from digmat.nn.painn import PaiNNConfig
    from digmat.systems import CrystalStateConfig
    from digmat.train import TrainConfig

    structures = load_carbon24(args.data_dir, split="train", members=args.members)
    init = CrystalScoreModel.from_checkpoint(args.init) if args.init else None
    if init is not None:  # the network and state convention are the starting model's
        net, state = init.config.network, init.config.state
    elif args.architecture == "cellnet":
        net = CellNetConfig(num_layers=args.layers, hidden=args.width, cutoff=args.cutoff)
    elif args.architecture == "painn":
        net = PaiNNConfig(num_layers=args.layers, hidden=args.width, cutoff=args.cutoff)
    else:
        net = GraphormerConfig(num_layers=args.layers, embed_dim=args.width, num_heads=args.heads, ffn_dim=2 * args.width, num_rbf=32,
                               cutoff=args.cutoff, num_tags=1, num_conditions=0, scalar_out=16, scalar_pool="none")
    if init is None:
        state = CrystalStateConfig.fit(structures, length_scale=args.length_scale)
    architecture = init.config.architecture if init is not None else args.architecture
    config = CrystalModelConfig(network=net, state=state, lattice_weight=args.lattice_weight, time_power=args.time_power, architecture=architecture)
    train = TrainConfig(steps=args.steps, batch_size=args.batch_size, lr=args.lr, warmup_steps=min(200, args.steps // 10), ema_decay=args.ema,
                        log_every=50, checkpoint_every=250, seed=args.seed)
    t0 = time.perf_counter()
    data = "carbon24 train representatives" + (" + members" if args.members else "")
    model, last = train_crystal_model(structures, args.out, config=config, train_config=train, progress=True, init=init,
                                      metadata={"data": data, "init": str(args.init) if args.init else None})
    summary = {"n_train": len(structures), "parameters": sum(p.numel() for p in model.parameters()), "seconds": round(time.perf_counter() - t0, 1),
               "threads": torch.get_num_threads(), **last, "state": model.config.to_dict()["state"]}
    Path(args.out, "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    print(json.dumps(summary, indent=2, default=str))


def noised_copies(structures, levels, *, seed: int, jobs: int, cache: Path):
    """One copy of each structure per displacement level (Å per Cartesian coordinate, fixed cell),
    labelled ``info["tb_gap"]`` with its own tight-binding gap; kept in ``cache`` (extxyz) and read
    back from there when the settings match."""
    from ase.io import read, write

    from digmat.design import TightBindingGap
    from digmat.files import atomic_path

    key = {"levels": [float(v) for v in levels], "seed": seed, "structures": [a.info.get("id", i) for i, a in enumerate(structures)]}
    stamp = cache.with_suffix(".json")
    if cache.exists() and stamp.exists() and json.loads(stamp.read_text()) == key:
        return read(cache, index=":")
    rng = np.random.default_rng(seed)
    copies = []
    for level in levels:
        for atoms in structures:
            moved = atoms.copy()
            moved.rattle(level, rng=rng)
            moved.info = {"noise_A": float(level), "source": str(atoms.info.get("id", ""))}
            copies.append(moved)
    gaps = TightBindingGap(n_jobs=jobs, on_error="nan")(copies)
    kept = [a for a, g in zip(copies, gaps) if np.isfinite(g)]
    for atoms, gap in zip(kept, gaps[np.isfinite(gaps)]):
        atoms.info["tb_gap"] = float(gap)
    with atomic_path(cache) as tmp:
        write(tmp, kept, format="extxyz")
    with atomic_path(stamp) as tmp:
        Path(tmp).write_text(json.dumps(key))
    return kept


def mae_by_level(predictor, structures) -> dict[str, float]:
    """Mean absolute error (eV) of ``predictor`` against ``info["tb_gap"]`` per ``info["noise_A"]``."""
    truth = np.array([a.info["tb_gap"] for a in structures])
    error = np.abs(predictor.predict_atoms(structures) - truth)
    levels = np.array([a.info["noise_A"] for a in structures])
    return {f"{v:g}": round(float(error[levels == v].mean()), 4) for v in sorted(set(levels.tolist()))}


def predictor_error(args) -> None:
    """Each predictor's error on the held-out representatives, on displaced copies (a ``--noised``
    training run's cache) and on a band-gap run's samples (their stored oracle gaps)."""
    from ase.io import read

    from digmat.design.carbon24 import load_carbon24
    from digmat.design.predictor import BandGapPredictor

    held = load_carbon24(args.data_dir, split="heldout")
    copies = read(args.copies, index=":") if args.copies else []
    runs = {}
    if args.samples:
        kept = json.loads(Path(args.samples, "runs.json").read_text())["runs"]
        for name, run in kept.items():
            idx = [i for i, s in enumerate(run["samples"]) if s["valid"] and s["gap"] is not None]
            runs[name] = ([read(Path(args.samples, name, f"sample_{i:03d}.cif")) for i in idx], np.array([run["samples"][i]["gap"] for i in idx]))
    report = {"copies": args.copies, "samples": args.samples, "predictors": {}}
    for name in args.predictor:
        predictor = BandGapPredictor.load(name).eval()
        row = {"heldout_mae_ev": round(float(np.abs(predictor.predict_atoms(held) - [a.info["tb_gap"] for a in held]).mean()), 4)}
        if copies:
            row["copies_mae_ev"] = mae_by_level(predictor, copies)
        for run, (structures, gaps) in runs.items():
            pred = predictor.predict_atoms(structures)
            row[f"samples_{run}"] = {"n": len(gaps), "mae_ev": round(float(np.abs(pred - gaps).mean()), 4),
                                     "mean_predicted_ev": round(float(pred.mean()), 3), "mean_oracle_ev": round(float(gaps.mean()), 3)}
        report["predictors"][name] = row
    print(json.dumps(report, indent=1))


def train_predictor(args) -> None:
    from digmat.design.carbon24 import load_carbon24
    from digmat.design.predictor import BandGapPredictor, FitConfig, default_m3gnet, fit_predictor

    train = load_carbon24(args.data_dir, split="train", members=args.members)
    held = load_carbon24(args.data_dir, split="heldout", members=False)
    noised_held = []
    if args.noised:
        reps = load_carbon24(args.data_dir, split="train") if args.members else train
        out = Path(args.out)
        train = train + noised_copies(reps, args.noised, seed=args.seed, jobs=args.jobs, cache=out.with_suffix(".noised_train.extxyz"))
        noised_held = noised_copies(held, args.noised, seed=args.seed + 1, jobs=args.jobs, cache=out.with_suffix(".noised_heldout.extxyz"))
    torch.manual_seed(args.seed)
    predictor = BandGapPredictor(default_m3gnet(("C",), cutoff=args.cutoff, threebody_cutoff=args.threebody_cutoff, width=args.width, blocks=args.blocks))
    log_path = Path(args.out).with_suffix(".log.jsonl")
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log_path.write_text("")

    def log(record):
        print(json.dumps(record), flush=True)
        with open(log_path, "a") as fh:
            fh.write(json.dumps(record) + "\n")

    summary = fit_predictor(predictor, train, [a.info["tb_gap"] for a in train], heldout=held, heldout_gaps=[a.info["tb_gap"] for a in held],
                            config=FitConfig(args.epochs, args.batch_size, args.lr, args.seed, args.time_limit), log=log)
    if noised_held:
        summary["noised_heldout_mae_ev"] = mae_by_level(predictor, noised_held)
    summary.update(data="carbon24 " + ("train members" if args.members else "train representatives")
                   + (f" + one displaced copy of each representative per level {args.noised} Å (own TB gaps)" if args.noised else ""),
                   heldout="64 held-out representatives",
                   parameters=sum(p.numel() for p in predictor.parameters()), threads=torch.get_num_threads())
    predictor.save(args.out, metadata=summary)
    print(json.dumps(summary, indent=2))


def profile(args) -> None:
    from digmat.design.carbon24 import load_carbon24
    from digmat.models import CrystalScoreModel, crystal_denoising_profile

    model = CrystalScoreModel.from_checkpoint(args.model)
    structures = load_carbon24(args.data_dir, split=args.split, members=False)
    rel = crystal_denoising_profile(model, structures, args.noise, generator=torch.Generator().manual_seed(args.seed))
    times = model.time_of_noise(args.noise)
    rows = [{"noise_A": a, "t": round(float(t), 5), **{k: round(float(v[i]), 4) for k, v in rel.items()}} for i, (a, t) in enumerate(zip(args.noise, times))]
    report = {"model": str(args.model), "split": args.split, "structures": len(structures), "relative_eps_mse": rows}
    if args.restart:
        from digmat.design import nn_distance_quantiles, restart_crystals

        picked = structures[: args.restart]
        report["restart"] = {"structures": len(picked), "nn_distance_quantiles_A_inputs": [round(q, 3) for q in nn_distance_quantiles(picked)],
                             "nn_distance_quantiles_A": {str(a): [round(q, 3) for q in nn_distance_quantiles(restart_crystals(model, picked, a, repeats=2, seed=args.seed))]
                                                         for a in args.noise}}
    print(json.dumps(report, indent=1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="what", required=True)
    score = sub.add_parser("score", help="crystal score model")
    score.add_argument("--out", required=True)
    score.add_argument("--steps", type=int, default=2400)
    score.add_argument("--batch-size", type=int, default=32)
    score.add_argument("--lr", type=float, default=5e-4)
    score.add_argument("--ema", type=float, default=0.999)
    score.add_argument("--architecture", choices=("graphormer", "cellnet", "painn"), default="graphormer",
                       help="periodic Graphormer with a cutoff, the fully connected cell-level network (digmat.nn.cellnet) "
                            "or the equivariant message-passing network (digmat.nn.painn)")
    score.add_argument("--layers", type=int, default=4)
    score.add_argument("--width", type=int, default=64)
    score.add_argument("--heads", type=int, default=4)
    score.add_argument("--cutoff", type=float, default=5.0)
    score.add_argument("--lattice-weight", type=float, default=1.0)
    score.add_argument("--time-power", type=float, default=1.0, help="training times t = u^p: p > 1 favours low noise")
    score.add_argument("--init", default=None, metavar="MODEL", help="warm-start from this crystal model (its network and state convention)")
    score.add_argument("--length-scale", type=float, default=1.0, help="positional noise unit, Å (see digmat.systems.crystal)")
    score.set_defaults(func=train_score)
    pred = sub.add_parser("predictor", help="M3GNet band-gap predictor")
    pred.add_argument("--out", required=True, help="checkpoint file (.pt)")
    pred.add_argument("--epochs", type=int, default=40)
    pred.add_argument("--batch-size", type=int, default=16)
    pred.add_argument("--lr", type=float, default=2e-3)
    pred.add_argument("--width", type=int, default=48)
    pred.add_argument("--blocks", type=int, default=3)
    pred.add_argument("--cutoff", type=float, default=4.5)
    pred.add_argument("--threebody-cutoff", type=float, default=3.0, help="Å; 3.0 covers carbon's first and second neighbours")
    pred.add_argument("--time-limit", type=float, default=None, help="stop after this many seconds")
    pred.add_argument("--noised", type=float, nargs="+", default=(), metavar="ANGSTROM",
                      help="also train on a displaced copy of each training representative per level (Å per coordinate), "
                           "labelled with its own TB gap; held-out MAE reported per level too")
    pred.add_argument("--jobs", type=int, default=1, help="processes for the TB labels of --noised copies")
    pred.set_defaults(func=train_predictor)
    err = sub.add_parser("predictor-error", help="band-gap predictors' errors off the relaxed cells (JSON)")
    err.add_argument("--predictor", nargs="+", default=["carbon24_gap"], help="checkpoints or shipped names")
    err.add_argument("--copies", default=None, help="displaced copies with their own TB gaps (a --noised run's .noised_heldout.extxyz)")
    err.add_argument("--samples", default=None, help="a bandgap_carbon.py output folder: error on its runs' valid samples")
    err.set_defaults(func=predictor_error)
    prof = sub.add_parser("profile", help="denoising error of a score model per noise level")
    prof.add_argument("--model", required=True)
    prof.add_argument("--split", choices=("train", "heldout"), default="heldout")
    prof.add_argument("--noise", type=float, nargs="+", default=[0.02, 0.05, 0.1, 0.2, 0.5, 1.0], help="positional noise levels, Å")
    prof.add_argument("--restart", type=int, default=0, metavar="N",
                      help="also noise N structures to each level and denoise them with the reverse SDE: 10/50/90 %% nearest-neighbour distances")
    prof.set_defaults(func=profile)

    for p in (score, pred, err, prof):
        p.add_argument("--data-dir", default=None, help="folder with Carbon-24 val.csv/test.csv")
        p.add_argument("--members", action="store_true", help="train on every member of the training groups, not only representatives")
        p.add_argument("--seed", type=int, default=0)
        p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    args.func(args)


if __name__ == "__main__":
    main()
