"""``digmat train adsorption``: train an adsorption score model, from structures or from an energy alone.

* ``--data LMDB``: denoising score matching on the states of every configuration in an
  OC20-format LMDB.
* ``--energy CALC SLAB ADSORBATE -T 300 600 1200``: no structures and no reference search —
  replica exchange on the calculator's energy of the adsorbate on the slab (checkpointed; the
  samples are kept in ``DIR/samples.npz``), then target score matching blended with DSM on those
  samples (:mod:`digmat.tasks.energy_training`). ``--init adsorption`` fine-tunes the shipped
  model instead of training from scratch.

Both train with EMA, checkpoints and resume (rerun the same command to continue; bit-identical
to an uninterrupted run with the same thread count and device, see :mod:`digmat.train`), a
JSON-lines log and a progress bar. Under ``torchrun --nproc_per_node K digmat train ...`` they
train with DistributedDataParallel (gloo on CPU, NCCL on CUDA).
"""

from __future__ import annotations

import argparse
import functools
import json
import sys

from digmat.cli.options import (SLAB_HELP, add_device_option, add_temperature_option, add_threads_option, apply_threads, at_least,
                                non_negative, positive, resolve_device)

NETWORK_DEFAULTS = {"layers": 4, "embed_dim": 96, "heads": 6, "cutoff": 6.0, "rbf": 32, "network_depth": 3.0}
"""Network of a model trained from scratch; with ``--init`` the checkpoint's network is kept."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("system", choices=("adsorption",), help="what kind of model to train")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--data", help="OC20-format LMDB file or folder of shards")
    source.add_argument("--energy", nargs=3, metavar=("CALC", "SLAB", "ADSORBATE"),
                        help="learn from a calculator's energy alone (emt, chgnet, ...), no data: the calculator, the slab "
                             f"({SLAB_HELP}) and the adsorbate (e.g. O, CO, CH3CO)")
    parser.add_argument("--out", required=True, help="output folder: checkpoint.pt, model.pt, log.jsonl (+ samples.npz with --energy)")
    parser.add_argument("--steps", type=at_least(1), default=20000)
    parser.add_argument("--batch-size", type=at_least(1), default=64, help="global batch size (split over DDP ranks)")
    parser.add_argument("--lr", type=positive(float), default=5e-4)
    parser.add_argument("--ema-decay", type=non_negative(float), default=0.999)
    shown = NETWORK_DEFAULTS
    parser.add_argument("--layers", type=at_least(1), help=f"Graphormer layers (default {shown['layers']}, or --init's)")
    parser.add_argument("--embed-dim", type=at_least(1), help=f"features (default {shown['embed_dim']}, or --init's)")
    parser.add_argument("--heads", type=at_least(1), help=f"attention heads (default {shown['heads']}, or --init's)")
    parser.add_argument("--cutoff", type=positive(float), help=f"attention cutoff, Å (default {shown['cutoff']:g}, or --init's)")
    parser.add_argument("--rbf", type=at_least(1), help=f"radial basis functions (default {shown['rbf']}, or --init's)")
    parser.add_argument("--network-depth", type=float, help="slab atoms deeper than this below the surface (Å) are left out of the "
                        f"network's input; <0: keep all (default {shown['network_depth']:g}, or --init's)")
    add_temperature_option(parser, default=None, several=True,
                           help="with --data: temperature in K of records that carry none (e.g. OC20); "
                                "with --energy: the temperatures to learn, K (default 300 600 1200)")
    tempering = parser.add_argument_group("replica exchange (--energy)")
    tempering.add_argument("--chains", type=at_least(1), default=8, help="chains per rung (default 8)")
    tempering.add_argument("--sweeps", type=at_least(2), default=400, help="sweeps in all (default 400)")
    tempering.add_argument("--burn-in", type=at_least(0), default=100, help="adapting, unrecorded sweeps (default 100)")
    tempering.add_argument("--hottest", type=positive(float), default=2400.0, help="hottest rung, K (default 2400)")
    tempering.add_argument("--rung-ratio", type=positive(float), default=2**0.5,
                           help="largest temperature ratio of neighbouring rungs (default 1.414)")
    tempering.add_argument("--jump-every", type=at_least(0), default=2,
                           help="a mode-jumping move between the slab's sites every N sweeps (default 2; 0: none)")
    parser.add_argument("--checkpoint-every", type=at_least(1), default=500)
    parser.add_argument("--log-every", type=at_least(1), default=50)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--systems-per-batch", type=at_least(0), default=0, metavar="K",
                        help="with --data: each batch holds batch-size/K samples of each of K systems, every system "
                             "visited equally often (fewer per-system operations per step: faster on CPU); 0: batches "
                             "drawn from all records (default)")
    parser.add_argument("--target", choices=("dsm", "pooled"), default="dsm",
                        help="with --data: the regression target; dsm: the noised record's own (default); pooled: the exact "
                             "score of all records of its system at its temperature (same minimiser, less variance)")
    parser.add_argument("--init", default=None, metavar="CHECKPOINT",
                        help="warm start (fine-tuning): the weights and network of an adsorption checkpoint (a path or a shipped name)")
    add_device_option(parser, default=None, what="training")
    add_threads_option(parser)
    parser.add_argument("--json", action="store_true", help="print the final log record as JSON")


def model_config(args: argparse.Namespace, *, elements, adsorbates, temperature_range):
    """The model's configuration and initial weights: ``--init``'s configuration (its network must
    agree with any network option given) and weights (EMA when present), or a new configuration
    from the options and None; the domain (elements, adsorbates, temperatures) is always this run's data."""
    from dataclasses import replace

    from digmat.models import AdsorptionModelConfig
    from digmat.nn import GraphormerConfig
    from digmat.systems.adsorbate import ANCHOR_TAG

    given = {k: getattr(args, k) for k in NETWORK_DEFAULTS if getattr(args, k) is not None}
    if given.get("network_depth", 0.0) < 0:
        given["network_depth"] = -1.0        # any negative depth: keep every slab atom
    lo, hi = temperature_range
    domain = {"elements": tuple(elements), "adsorbates": tuple(adsorbates),
              "temperature_range": (min(lo, 0.8 * lo), max(hi * 1.25, lo + 1.0))}
    if args.init is not None:
        from digmat.checkpoint import load_checkpoint, resolve_checkpoint

        ckpt = load_checkpoint(resolve_checkpoint(args.init))
        if not isinstance(ckpt["config"], dict) or not isinstance(ckpt["config"].get("network"), dict):
            raise ValueError(f"--init {args.init}: not an adsorption model checkpoint (no network configuration)")
        base = AdsorptionModelConfig.from_dict(ckpt["config"])
        net = base.network
        theirs = {"layers": net.num_layers, "embed_dim": net.embed_dim, "heads": net.num_heads, "cutoff": net.cutoff,
                  "rbf": net.num_rbf, "network_depth": -1.0 if base.network_depth is None else base.network_depth}
        differ = {k: (theirs[k], v) for k, v in given.items() if theirs[k] != v}
        if differ:
            listed = ", ".join(f"{k} {a} there, {b} here" for k, (a, b) in differ.items())
            raise ValueError(f"--init {args.init}: its network differs from this run's ({listed})")
        return replace(base, **domain), ckpt["ema_state_dict"] or ckpt["state_dict"]
    o = {**NETWORK_DEFAULTS, **given}
    if o["embed_dim"] % o["heads"]:
        raise ValueError(f"--embed-dim {o['embed_dim']} must be a multiple of --heads {o['heads']}")
    network = GraphormerConfig(num_layers=o["layers"], embed_dim=o["embed_dim"], num_heads=o["heads"], ffn_dim=2 * o["embed_dim"],
                               num_rbf=o["rbf"], cutoff=o["cutoff"], num_tags=ANCHOR_TAG + 1, num_conditions=1, scalar_out=0)
    return AdsorptionModelConfig(network=network, network_depth=None if o["network_depth"] < 0 else o["network_depth"], **domain), None


def run(args: argparse.Namespace) -> int:
    import torch

    from digmat.train import distributed_context

    if args.ema_decay >= 1:
        raise ValueError(f"--ema-decay {args.ema_decay}: must be < 1")
    if args.device is not None:
        resolve_device(args.device)
    apply_threads(args.threads)
    build = _energy_data if args.energy is not None else _lmdb_data
    data, (config, weights), meta, loss = build(args)
    ctx = distributed_context(args.device)
    from digmat.models import AdsorptionScoreModel
    from digmat.train import Trainer, TrainConfig

    torch.manual_seed(args.seed)
    model = AdsorptionScoreModel(config)
    if weights is not None:
        model.load_state_dict(weights)
    train = TrainConfig(steps=args.steps, batch_size=args.batch_size, lr=args.lr, ema_decay=args.ema_decay, warmup_steps=min(500, args.steps // 10 + 1), log_every=args.log_every, checkpoint_every=args.checkpoint_every, seed=args.seed, groups_per_batch=args.systems_per_batch)
    meta |= {"elements": list(config.elements), "adsorbates": list(config.adsorbates), "init": args.init, "kind": "adsorption"}
    trainer = Trainer(model, loss, data, data.collate, train, args.out, model_config=config.to_dict(), metadata=meta, context=ctx, progress=not args.json)
    last = trainer.fit()
    if args.json and ctx.is_main:
        print(json.dumps(last))
    return 0


def _lmdb_data(args: argparse.Namespace):
    from digmat.models import adsorption_dsm_loss
    from digmat.tasks.datasets import AdsorptionDataset

    temps = args.temperature or []
    if len(temps) > 1:
        raise ValueError("-T with --data takes one temperature (K), for records that carry none")
    dataset = AdsorptionDataset(args.data, temperature=temps[0] if temps else None)
    setup = model_config(args, elements=dataset.elements, adsorbates=dataset.adsorbates, temperature_range=dataset.temperature_range)
    loss = adsorption_dsm_loss if args.target == "dsm" else functools.partial(adsorption_dsm_loss, pools=dataset.pool)
    meta = {"data": str(args.data), "records": len(dataset), "systems": len(dataset.systems), "target": args.target}
    return dataset, setup, meta, loss


def _energy_data(args: argparse.Namespace):
    """Check everything, then replica exchange (or its saved samples), then the dataset."""
    from digmat.adsorption import get_adsorbate
    from digmat.calculators import get_calculator
    from digmat.cli.options import check_calculators, check_output_dir, load_slab
    from digmat.systems import AdsorbateSystem
    from digmat.tasks.energy_training import (BoltzmannSamples, EnergyDataset, TemperingConfig, adsorption_tsm_loss,
                                              sample_adsorbate_boltzmann, slab_fingerprint)

    calc, slab_text, adsorbate_text = args.energy
    if args.target != "dsm":
        raise ValueError(f"--target {args.target} needs --data (with --energy the target is the energy's score)")
    if not args.burn_in < args.sweeps:
        raise ValueError(f"--burn-in {args.burn_in} must be smaller than --sweeps {args.sweeps}")
    check_calculators(("--energy", calc))
    slab = load_slab(slab_text)
    adsorbate = get_adsorbate(adsorbate_text)
    temps = sorted(set(args.temperature or [300.0, 600.0, 1200.0]))
    tempering = TemperingConfig(chains=args.chains, sweeps=args.sweeps, burn_in=args.burn_in,
                                hottest=max(args.hottest, temps[-1]), rung_ratio=args.rung_ratio, seed=args.seed,
                                jump_every=args.jump_every)
    out = check_output_dir(args.out, files=("samples.npz",))
    # the model's configuration is checked before the sampling, the expensive part
    elements = sorted(set(slab.get_chemical_symbols()) | set(adsorbate.get_chemical_symbols()))
    formula = adsorbate.get_chemical_formula(mode="hill")
    setup = model_config(args, elements=elements, adsorbates=[formula], temperature_range=(temps[0], temps[-1]))
    settings = {"calculator": calc, "slab": slab_fingerprint(slab), "adsorbate": adsorbate_text, "temperatures": temps,
                "tempering": {k: getattr(tempering, k) for k in ("chains", "sweeps", "burn_in", "hottest", "rung_ratio", "seed", "jump_every")}}
    path = out / "samples.npz"
    if path.is_file():   # sampled by an earlier run of this command
        samples, theirs = BoltzmannSamples.load(path)
        if theirs != json.loads(json.dumps(settings)):
            raise ValueError(f"{path} holds samples made with other settings ({theirs}); use another --out")
        system = AdsorbateSystem(slab, adsorbate)
    else:
        system, samples = sample_adsorbate_boltzmann(slab, adsorbate, get_calculator(calc), temps, tempering,
                                                     checkpoint=out / "tempering.npz", progress=not args.json)
        samples.save(path, settings)
    rhat = samples.rhat()
    at = {t: float(rhat[samples.rung(t)]) for t in temps}
    unmixed = [f"{t:g} K (R̂ {r:.2f})" for t, r in at.items() if r > 1.1]
    if unmixed:
        print(f"digmat train: warning: the replica-exchange chains disagree at {', '.join(unmixed)}; "
              "the samples may miss or over-weight sites: more --sweeps or --chains", file=sys.stderr)
    dataset = EnergyDataset(system, samples, (temps[0], temps[-1]))
    meta = {"energy": calc, "slab": slab_text, "adsorbate": formula, "temperatures": temps, "records": len(dataset),
            "systems": 1, "calculator_calls": samples.calls, "sampling_seconds": round(samples.seconds, 1),
            "rungs": samples.ladder.tolist(), **{k: [None if v != v else round(v, 4) for v in t.tolist()] for k, t in (
                ("mala_acceptance", samples.acceptance), ("swap_acceptance", samples.swap_acceptance),
                ("jump_acceptance", samples.jump_acceptance), ("rhat", rhat))}}
    return dataset, setup, meta, adsorption_tsm_loss

