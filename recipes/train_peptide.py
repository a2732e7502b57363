"""Train the peptide score model on metadynamics reference ensembles (and ship it).

Data: ``--data`` (default ``data/peptides``), one folder per sequence with ``run*.npz``
written by ``recipes/reference_peptides.py``.  Every sequence named in ``--train`` needs its
runs; held-out sequences are never read here (``recipes/bench_peptide.py`` scores them).
Training resumes from ``OUT/checkpoint.pt`` when rerun with the same settings.

Examples::

    python recipes/train_peptide.py --train A --out runs/peptide --steps 4000
    python recipes/train_peptide.py --train A G V F K --out runs/peptide --steps 20000 --ship
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from digmat.checkpoint import SHIPPED_DIR, load_checkpoint, save_checkpoint
from digmat.models import PeptideModelConfig
from digmat.tasks.peptide_data import PeptideDataset, train_peptide_model
from digmat.train import TrainConfig


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=Path("data/peptides"), help="reference folder")
    parser.add_argument("--train", nargs="+", required=True, help="training sequences")
    parser.add_argument("--out", type=Path, required=True, help="run folder (checkpoints, log, model.pt)")
    parser.add_argument("--steps", type=int, default=4000)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--width", type=int, default=128)
    parser.add_argument("--layers", type=int, default=3)
    parser.add_argument("--time-power", type=float, default=1.0)
    parser.add_argument("--samples-per-peptide", type=int, default=20000)
    parser.add_argument("--steric-points", type=int, default=0,
                        help="angles per turn of each torsion's steric clearance profile fed to the model (0: none)")
    parser.add_argument("--steric-current", action="store_true",
                        help="also feed each torsion's clearance in the current noisy conformation")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--ship", action="store_true", help=f"copy the EMA weights to {SHIPPED_DIR}/peptide.pt")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    dataset = PeptideDataset(args.data, args.train, samples_per_peptide=args.samples_per_peptide, seed=args.seed)
    config = PeptideModelConfig(width=args.width, layers=args.layers, heads=4, ffn=2 * args.width,
                                time_power=args.time_power, steric_points=args.steric_points,
                                steric_current=args.steric_current)
    train = TrainConfig(steps=args.steps, batch_size=args.batch_size, lr=args.lr, warmup_steps=min(200, args.steps // 10),
                        ema_decay=0.999, log_every=50, checkpoint_every=500, seed=args.seed)
    start = time.perf_counter()
    model, last = train_peptide_model(dataset, args.out, config=config, train_config=train,
                                      metadata={"data": str(args.data), "name": "peptide"}, progress=True)
    summary = {"sequences": dataset.sequences, "effective_samples": dataset.effective_samples,
               "parameters": sum(p.numel() for p in model.parameters()), **last, "train_seconds": last.get("seconds"),
               "wall_seconds_this_call": round(time.perf_counter() - start, 1), "threads": torch.get_num_threads()}
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary, indent=2))
    if args.ship:
        ckpt = load_checkpoint(args.out / "model.pt")
        from digmat.tasks.peptide_data import load_reference_runs
        from digmat.tasks.peptide_sampling import ramachandran_histograms

        # Compact reference (φ, ψ) histograms of the training peptides, for the CLI's plot contours.
        histograms = {}
        for seq in dataset.sequences:
            runs = load_reference_runs(args.data, seq)
            angles = np.concatenate([r.phi_psi for r in runs])
            weights = np.concatenate([r.weights() / len(runs) for r in runs])
            histograms[seq] = np.round(ramachandran_histograms(angles, weights), 6).tolist()
        meta = {**ckpt["metadata"], "train_seconds": summary["train_seconds"], "command": " ".join(sys.argv),
                "reference_histograms": histograms}
        # The EMA weights are the shipped weights (stored once: ema_state_dict None).
        save_checkpoint(SHIPPED_DIR / "peptide.pt", config=ckpt["config"], state_dict=ckpt["ema_state_dict"],
                        ema_state_dict=None, metadata=meta, kind="peptide")
        print(f"shipped {SHIPPED_DIR / 'peptide.pt'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
