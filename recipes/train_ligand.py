"""Train the ligand-pose score model on reference ensembles (and ship it).

Data: ``--data`` (default ``data/ligands``), one folder per complex written by
``recipes/reference_ligands.py``. Complexes named in ``--train`` are trained on; the others are
never read here (``recipes/bench_ligand.py --model`` scores them). Training resumes from
``OUT/checkpoint.pt`` when rerun with the same settings.

Examples::

    python recipes/train_ligand.py --train 1uou --out runs/ligand --steps 200
    python recipes/train_ligand.py --train 1uou 1s3v 1of6 --out runs/ligand --steps 3000 --ship
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from digmat.checkpoint import SHIPPED_DIR, load_checkpoint, save_checkpoint
from digmat.models.ligand import ORIENTATION_READOUTS, LigandModelConfig, LigandScoreModel
from digmat.tasks.ligand_data import LigandDataset, load_complex, train_ligand_model
from digmat.train import TrainConfig


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=Path("data/ligands"), help="reference folder")
    parser.add_argument("--train", nargs="+", required=True, help="training complexes")
    parser.add_argument("--out", type=Path, required=True, help="run folder (checkpoints, log, model.pt)")
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--batch-size", type=int, default=48)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--layers", type=int, default=3)
    parser.add_argument("--cutoff", type=float, default=LigandModelConfig.cutoff, help="Å, ligand–pocket interaction range")
    parser.add_argument("--time-power", type=float, default=1.0)
    parser.add_argument("--vector-features", action="store_true",
                        help="equivariant vector channels per ligand atom (with --init: added to the initial "
                             "model, starting as it)")
    parser.add_argument("--alignment", type=int, default=0, metavar="K",
                        help="K frame-vector pairs of an alignment torque between the ligand and the pocket around the "
                             "site (with --init: added to the initial model, starting as it)")
    parser.add_argument("--orientation", choices=ORIENTATION_READOUTS, default=None,
                        help="orientation read-out: torque of the atomic vectors, or the least-squares rotation "
                             "they describe (inertia-weighted); default: torque, or the initial model's")
    parser.add_argument("--time", type=float, default=None, metavar="T",
                        help="train at this one diffusion time only (diagnostic: can the network reach the floor there?)")
    parser.add_argument("--samples-per-complex", type=int, default=12800)
    parser.add_argument("--weights", default=None, metavar="CALC",
                        help="train on the references' modes as CALC weighed them (weights_CALC.npz of "
                             "recipes/weigh_reference_ligands.py; default: their own Vina weights)")
    parser.add_argument("--init", default=None, metavar="MODEL",
                        help="warm start from this checkpoint or shipped model name (its network settings are used)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--ship", action="store_true", help=f"copy the EMA weights to {SHIPPED_DIR}/ligand.pt")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.init:
        from digmat.pretrained import load_model

        model = load_model(args.init)
        added = {name: value for name, value in (("vector_features", args.vector_features), ("alignment", args.alignment))
                 if value and not getattr(model.config, name)}
        if added:
            model = model.extended(**added)
        if args.alignment and model.config.alignment not in (0, args.alignment):
            parser.error(f"--alignment {args.alignment}: the initial model has alignment {model.config.alignment}")
        if args.orientation not in (None, model.config.orientation):
            parser.error(f"--orientation {args.orientation}: the initial model reads out {model.config.orientation!r}")
    else:
        model = LigandScoreModel(LigandModelConfig(width=args.width, layers=args.layers, cutoff=args.cutoff,
                                                   time_power=args.time_power, vector_features=args.vector_features,
                                                   orientation=args.orientation or "torque", alignment=args.alignment))
    start = time.perf_counter()
    complexes = []
    for name in args.train:
        box = json.loads((args.data / name / "summary.json").read_text())["box_radius_A"]
        complexes.append(load_complex(name, model, box_radius=box, folder=args.data))
        print(f"{name}: {complexes[-1].system}", flush=True)
    dataset = LigandDataset(args.data, complexes, samples_per_complex=args.samples_per_complex, seed=args.seed,
                            weights=args.weights)
    train = TrainConfig(steps=args.steps, batch_size=args.batch_size, lr=args.lr, warmup_steps=min(200, args.steps // 10),
                        ema_decay=0.995, log_every=50, checkpoint_every=250, seed=args.seed)
    last = train_ligand_model(dataset, model, args.out, train_config=train, time=args.time,
                              metadata={"data": str(args.data), "name": "ligand",
                                                                 "reference_weights": args.weights or "vina",
                                                                 "init": args.init}, progress=True)
    summary = {"complexes": dataset.names, "effective_samples": dataset.effective_samples,
               "parameters": sum(p.numel() for p in model.parameters()), **last,
               "train_seconds": last.get("seconds"), "wall_seconds_this_call": round(time.perf_counter() - start, 1),
               "threads": torch.get_num_threads()}
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary, indent=2))
    if args.ship:
        ckpt = load_checkpoint(args.out / "model.pt")
        meta = {**ckpt["metadata"], "train_seconds": summary["train_seconds"], "command": " ".join(sys.argv)}
        save_checkpoint(SHIPPED_DIR / "ligand.pt", config=ckpt["config"], state_dict=ckpt["ema_state_dict"],
                        ema_state_dict=None, metadata=meta, kind="ligand")
        print(f"shipped {SHIPPED_DIR / 'ligand.pt'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
