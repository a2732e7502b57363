"""``digmat train adsorption --data LMDB --out DIR``: train an adsorption score model.

Denoising score matching on the states of every configuration in an OC20-format LMDB, with EMA,
checkpoints and resume (rerun the same command to continue; bit-identical to an uninterrupted
run with the same thread count and device, see :mod:`digmat.train`), a JSON-lines log and a
progress bar. Under ``torchrun --nproc_per_node K digmat train ...`` it trains with
DistributedDataParallel (gloo on CPU, NCCL on CUDA).
"""

from __future__ import annotations

import argparse
import json

from digmat.cli.options import add_temperature_option, at_least, non_negative, positive


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("system", choices=("adsorption",), help="what kind of model to train")
    parser.add_argument("--data", required=True, help="OC20-format LMDB file or folder of shards")
    parser.add_argument("--out", required=True, help="output folder: checkpoint.pt, model.pt, log.jsonl")
    parser.add_argument("--steps", type=at_least(1), default=20000)
    parser.add_argument("--batch-size", type=at_least(1), default=64, help="global batch size (split over DDP ranks)")
    parser.add_argument("--lr", type=positive(float), default=5e-4)
    parser.add_argument("--ema-decay", type=non_negative(float), default=0.999)
    parser.add_argument("--layers", type=at_least(1), default=4)
    parser.add_argument("--embed-dim", type=at_least(1), default=96)
    parser.add_argument("--heads", type=at_least(1), default=6)
    parser.add_argument("--cutoff", type=positive(float), default=6.0, help="attention cutoff, Å")
    parser.add_argument("--rbf", type=at_least(1), default=32, help="radial basis functions")
    parser.add_argument("--network-depth", type=float, default=3.0, help="slab atoms deeper than this below the surface (Å) are left out of the network's input; <0: keep all")
    add_temperature_option(parser, default=None, help="temperature in K of records that carry none (e.g. OC20)")
    parser.add_argument("--checkpoint-every", type=at_least(1), default=500)
    parser.add_argument("--log-every", type=at_least(1), default=50)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--init", default=None, metavar="CHECKPOINT",
                        help="warm start: initial weights from an adsorption checkpoint (a path or a shipped name) with the same network")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    parser.add_argument("--json", action="store_true", help="print the final log record as JSON")


def init_weights(model, source: str) -> None:
    """Load the weights of a trained adsorption model (EMA weights when present) into ``model``.

    Raises ``ValueError`` when the checkpoint's network differs from ``model``'s.
    """
    from digmat.checkpoint import load_checkpoint, resolve_checkpoint

    ckpt = load_checkpoint(resolve_checkpoint(source))
    network = ckpt["config"].get("network") if isinstance(ckpt["config"], dict) else None
    ours = model.config.network.to_dict()
    if not isinstance(network, dict):
        raise ValueError(f"--init {source}: not an adsorption model checkpoint (no network configuration)")
    differ = {k: (network.get(k), v) for k, v in ours.items() if network.get(k) != v}
    if differ:
        listed = ", ".join(f"{k} {a} there, {b} here" for k, (a, b) in differ.items())
        raise ValueError(f"--init {source}: its network differs from this run's ({listed})")
    model.load_state_dict(ckpt["ema_state_dict"] or ckpt["state_dict"])


def run(args: argparse.Namespace) -> int:
    import torch

    from digmat.tasks.datasets import AdsorptionDataset
    from digmat.models import AdsorptionModelConfig, AdsorptionScoreModel, adsorption_dsm_loss
    from digmat.nn import GraphormerConfig
    from digmat.systems.adsorbate import ANCHOR_TAG
    from digmat.train import Trainer, TrainConfig, distributed_context

    if args.ema_decay >= 1:
        raise ValueError(f"--ema-decay {args.ema_decay}: must be < 1")
    if args.embed_dim % args.heads:
        raise ValueError(f"--embed-dim {args.embed_dim} must be a multiple of --heads {args.heads}")
    if args.device is not None:
        from digmat.cli.options import resolve_device

        resolve_device(args.device)
    ctx = distributed_context(args.device)
    network = GraphormerConfig(num_layers=args.layers, embed_dim=args.embed_dim, num_heads=args.heads, ffn_dim=2 * args.embed_dim, num_rbf=args.rbf, cutoff=args.cutoff, num_tags=ANCHOR_TAG + 1, num_conditions=1, scalar_out=0)
    dataset = AdsorptionDataset(args.data, temperature=args.temperature)
    lo, hi = dataset.temperature_range
    config = AdsorptionModelConfig(network=network, temperature_range=(min(lo, 0.8 * lo), max(hi * 1.25, lo + 1.0)), elements=dataset.elements,
                                   adsorbates=dataset.adsorbates, network_depth=None if args.network_depth < 0 else args.network_depth)
    torch.manual_seed(args.seed)
    model = AdsorptionScoreModel(config)
    if args.init is not None:
        init_weights(model, args.init)
    train = TrainConfig(steps=args.steps, batch_size=args.batch_size, lr=args.lr, ema_decay=args.ema_decay, warmup_steps=min(500, args.steps // 10 + 1), log_every=args.log_every, checkpoint_every=args.checkpoint_every, seed=args.seed)
    meta = {"data": str(args.data), "records": len(dataset), "systems": len(dataset.systems), "elements": list(dataset.elements),
            "adsorbates": list(dataset.adsorbates), "init": args.init, "kind": "adsorption"}
    trainer = Trainer(model, adsorption_dsm_loss, dataset, dataset.collate, train, args.out, model_config=config.to_dict(), metadata=meta, context=ctx, progress=not args.json)
    last = trainer.fit()
    if args.json and ctx.is_main:
        print(json.dumps(last))
    return 0
