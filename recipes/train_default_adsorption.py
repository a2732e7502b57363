"""Train digmat's default adsorption model from the reference corpus, and optionally ship it.

Steps (each resumable: rerun the same command after a kill):

1. equilibrium datasets from the corpus's reference results
   (``make_adsorption_corpus.py --datasets``: harmonic basin samples mixed with the
   basins' Boltzmann weights at 300, 600 and 1200 K → ``CORPUS/datasets/{train,heldout}/``);
2. ``digmat train adsorption`` on the training split (held-out surfaces and compositions
   never enter);
3. ``--ship``: copy the EMA weights to ``digmat/pretrained/adsorption.pt`` with the corpus
   and training settings in the checkpoint's metadata (the model card,
   ``digmat/pretrained/adsorption.md``, quotes ``recipes/bench_adsorption.py``'s scores).

Example (the shipped model: 28,000 steps, 57 min on 2 CPU threads)::

    python recipes/train_default_adsorption.py --corpus corpus --out runs/default --steps 28000 --ship
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import torch

from digmat.checkpoint import load_checkpoint, save_checkpoint
from digmat.cli.main import main as digmat

HERE = Path(__file__).resolve().parent
SHIPPED = HERE.parent / "digmat" / "pretrained" / "adsorption.pt"

NETWORK = ["--layers", "4", "--embed-dim", "64", "--heads", "4", "--cutoff", "5.0", "--rbf", "16", "--network-depth", "3.0"]


def surface_signatures(corpus: Path, systems: list[str]) -> list[list[int]]:
    """Distinct surface coordination signatures of the training slabs (the model's surface domain,
    checked by :func:`digmat.tasks.domain.check_sampling_slab`)."""
    from digmat.adsorption import ReferenceResult
    from digmat.tasks.domain import surface_signature

    found = {surface_signature(ReferenceResult.from_json(corpus / "results" / f"{name}.json").slab) for name in systems}
    return [list(s) for s in sorted(found)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--corpus", type=Path, required=True, help="corpus folder of make_adsorption_corpus.py (results/*.json)")
    parser.add_argument("--out", type=Path, required=True, help="training folder")
    parser.add_argument("--steps", type=int, default=28000)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--samples", type=int, default=200, help="samples per system and temperature")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--ema-decay", type=float, default=0.995, help="EMA decay of the shipped weights")
    parser.add_argument("--systems-per-batch", type=int, default=0,
                        help="systems per batch (digmat train --systems-per-batch; 0: batches drawn from all records)")
    parser.add_argument("--target", choices=("dsm", "pooled"), default="dsm", help="regression target (digmat train --target)")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads for training (digmat train --threads)")
    parser.add_argument("--init", default=None, help="warm start from this checkpoint or shipped model name (same network)")
    parser.add_argument("--ship", type=Path, nargs="?", const=SHIPPED, default=None, metavar="PATH",
                        help="install the trained weights as the shipped default model (or write that checkpoint to PATH)")
    args = parser.parse_args(argv)

    t0 = time.perf_counter()
    subprocess.run([sys.executable, str(HERE / "make_adsorption_corpus.py"), "--out", str(args.corpus), "--datasets",
                    "--samples", str(args.samples), "--seed", str(args.seed)], check=True)
    train_data = args.corpus / "datasets" / "train"
    systems = sorted(p.stem for p in train_data.glob("*.lmdb"))
    if not systems:
        raise SystemExit(f"no training datasets under {train_data}: run make_adsorption_corpus.py first")
    t_data = time.perf_counter() - t0
    rc = digmat(["train", "adsorption", "--data", str(train_data), "--out", str(args.out), "--steps", str(args.steps),
                 "--batch-size", str(args.batch_size), "--lr", str(args.lr), "--ema-decay", str(args.ema_decay), "--seed", str(args.seed),
                 "--checkpoint-every", "250", "--systems-per-batch", str(args.systems_per_batch), "--target", args.target, *NETWORK,
                 *(["--init", args.init] if args.init else []), *(["--threads", str(args.threads)] if args.threads else [])])
    if rc:
        return rc
    t_train = time.perf_counter() - t0 - t_data
    if args.ship:
        ckpt = load_checkpoint(args.out / "model.pt")
        log = [json.loads(line) for line in (args.out / "log.jsonl").read_text().splitlines() if line.strip()]
        meta = dict(ckpt["metadata"])
        meta.update(
            recipe="recipes/train_default_adsorption.py", corpus_systems=systems, surface_signatures=surface_signatures(args.corpus, systems), samples_per_system_and_temperature=args.samples,
            init=args.init, steps=args.steps, batch_size=args.batch_size, systems_per_batch=args.systems_per_batch, lr=args.lr, ema_decay=args.ema_decay, target=args.target, network_args=NETWORK, torch=torch.__version__,
            train_seconds=log[-1].get("seconds") if log else None, final_loss=log[-1].get("loss") if log else None,
        )
        save_checkpoint(args.ship, config=ckpt["config"], state_dict=ckpt["ema_state_dict"] or ckpt["state_dict"], ema_state_dict=None, metadata=meta, kind="adsorption")
        print(f"shipped {args.ship} ({args.ship.stat().st_size / 1e6:.2f} MB)")
    print(json.dumps({"systems": len(systems), "data_seconds": round(t_data, 1), "train_seconds": round(t_train, 1)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
