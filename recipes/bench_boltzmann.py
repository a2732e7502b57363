"""Benchmark PIDP against MALA at equal cost on the DW-4 and LJ-13 Boltzmann targets.

For every ``--system`` (``dw4``, ``lj13``; repeatable, default both):

1. **PIDP** (:func:`digmat.core.fit_pidp`) trains a :class:`~digmat.nn.pairnet.PairNet` log-density from
   the energy alone, on ``system.training_log_target`` in state units (y = x / scale, with the COM
   tether that matches the VP prior). Its collocation buffer is filled by MALA on the target from
   broad draws N(0, init_std^2): ``--buffer-chains`` chains (default one per buffer state), half
   of ``--init-mala-steps`` adaptive burn-in, then ``buffer_size / buffer_chains`` states spaced
   along the rest of each chain. Each buffer state keeps its energy and force (evaluated once,
   counted). The default objective is target score matching on that buffer (``--tsm-weight 1``;
   the t = 0 score/value and Fokker–Planck terms are available by weight, see docs/pidp.md).
   Then ``-n`` samples by the reverse SDE (``--sampler-steps``), finished by
   ``--corrector-steps`` MALA steps on the model's *own* l(y, 0) (no target evaluations; the
   row also reports the samples before it), mapped to x units. The row ``reweighted`` then
   resamples those ``n`` states with replacement by the importance weights
   ``exp(log u(y) - l(y, 0))`` of the target against the model's density (the corrector leaves
   exp(l) invariant; ``n`` more target evaluations, energies only, counted), with the weights'
   effective sample size.
2. **MALA** baseline with the *same* number of target evaluations (energy + gradient): ``-n``
   chains from the same kind of broad draws, in state units, ``budget // n`` evaluations per
   chain: the first half adaptive burn-in (per-chain step size towards 57 % acceptance, rate
   ADAPT_RATE), the rest plain MALA with the adapted step sizes; the final states are its
   samples. (A long-MCMC row is not run: the reference splits *are* long MCMC; the published
   figure is quoted.)
3. Both against the held-out **test** split (``-n`` rows, drawn with a fixed seed, independent
   of ``--seed``): energy W2, x W2 (permutation + rotation aligned, :func:`digmat.boltzmann.x_w2`,
   on the first ``--xw2-n`` samples of each: it is quadratic in the count), pair-distance W2, mean
   energies, and the fractions of non-finite samples and of "exploded" ones (finite, but an
   energy more than 100 kT above the reference's highest: impossible under the target). Metrics
   use the finite samples. ``energy_w2`` is W2 itself; ``energy_w2_squared`` is what POT's
   ``emd2_1d`` returns, which iDEM's code logs as "energy W2" (:func:`digmat.boltzmann.energy_w2`;
   some later code takes its square root): compare the published figures with both.
4. The **floor** (``reference_floor``): energy W2 between five independent draws of ``-n`` rows of
   the *validation* split and the same test rows — the distance two exact samplers of ``n``
   samples show by chance (DW-4 at n = 1,000: 0.12–0.23; LJ-13: 0.49–0.59). Figures within it
   are indistinguishable from exact sampling at this ``n``.

Precision: float32 is enough and the default. On a DW-4 model trained 4000 steps in float64, the
FPE residual, the score and the FPE loss's parameter gradient computed in float32 differ from float64
by <= 1e-5 relative (t = 1e-3 ... 0.5, exact divergence), and training is ~1.4x faster; the MALA
baseline and all metrics run in float64.

Prints one JSON document: per system the two rows, their ratios (pidp / mala), the published
figures, the energy used; the resolved configuration; the machine.

Usage::

    python recipes/bench_boltzmann.py --smoke                       # both systems, seconds
    python recipes/bench_boltzmann.py --system dw4 --steps 3000 -n 1000 --save runs/boltzmann/dw4.pt
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

PUBLISHED = {"dw4": {"idem_energy_w2": 0.435, "long_mcmc_energy_w2": 0.148},
             "lj13": {"idem_energy_w2": 5.20, "long_mcmc_energy_w2": 0.516}}
# Per-system choices. MALA step sizes (state units^2) measured from broad draws / the reference
# samples with 200 adaptive steps: DW-4 settles at h ~ 6e-3 from any start; LJ-13 needs h ~ 1e-5 while
# particles still overlap (a larger start never recovers: acceptance ~ 0) and ~1e-3 at equilibrium.
# ``powers``: how the pair MLP may grow beyond the cutoff (DW-4's pair energy is quartic).
SYSTEM_SETTINGS = {"dw4": {"powers": (1, 2, 4), "mala_h0": 5e-3, "refresh_h": 5e-3},
                   "lj13": {"powers": (1,), "mala_h0": 1e-5, "refresh_h": 1e-4}}
FULL = {"steps": 8000, "batch_size": 128, "width": 32, "lr": 2e-3, "n": 1000, "sampler_steps": 200, "buffer_size": 2000,
        "refresh_every": 100000, "xw2_n": 200, "corrector_steps": 2000}
# Full-mode buffer per system (explicit --buffer-chains / --init-mala-steps win): LJ-13's 1,000-chain baseline at
# ~400 steps per chain does not equilibrate (energy W2 4.5); 250 chains x 1,600 steps do (1.2) for the same cost.
SYSTEM_BUFFER = {"dw4": {"buffer_chains": None, "init_mala_steps": 200}, "lj13": {"buffer_chains": 250, "init_mala_steps": 1600}}
SMOKE = {"steps": 20, "batch_size": 16, "width": 8, "lr": 2e-3, "n": 48, "sampler_steps": 8, "buffer_size": 64,
         "refresh_every": 10, "init_mala_steps": 10, "xw2_n": 16, "corrector_steps": 4}
WEIGHTS = {"score": 0.0, "value": 0.0, "fpe": 0.0, "tsm": 1.0}
EXPLODED_KT = 100.0
ADAPT_RATE = 0.3  # MALA burn-in: h *= exp(0.3 (accept - 0.57)) per step (0.05 left LJ-13 chains at h ~ 4e-5, acceptance 0.99)
METRICS = ("energy_w2", "energy_w2_squared", "x_w2", "distance_w2")


def _flag(key: str) -> str:
    return "-n" if key == "n" else "--" + key.replace("_", "-")


def _resolve(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Fill unset options from SMOKE or FULL and reject bad values with one-line errors."""
    from digmat.boltzmann import SYSTEMS

    base = SMOKE if args.smoke else FULL
    for key, value in base.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    args.system = list(dict.fromkeys(args.system or ["dw4", "lj13"]))
    for name in args.system:
        if name not in SYSTEMS:
            parser.error(f"unknown system {name!r}; choose from {', '.join(SYSTEMS)}")
    for key in ("steps", "batch_size", "width", "n", "sampler_steps", "buffer_size", "refresh_every"):
        if getattr(args, key) < 1:
            parser.error(f"{_flag(key)} must be a positive integer, got {getattr(args, key)}")
    for key in ("init_mala_steps", "xw2_n", "log_every", "corrector_steps"):
        if getattr(args, key) is not None and getattr(args, key) < 0:
            parser.error(f"{_flag(key)} must be >= 0, got {getattr(args, key)}")
    for term in WEIGHTS:
        if not getattr(args, f"{term}_weight") >= 0:
            parser.error(f"--{term}-weight must be >= 0, got {getattr(args, f'{term}_weight')}")
    if not any(getattr(args, f"{term}_weight") > 0 for term in ("score", "fpe", "tsm")):
        parser.error("nothing to train: one of --score-weight, --fpe-weight, --tsm-weight must be > 0")
    for name in args.system:
        chains, _ = buffer_plan(args, name)
        if not (0 < chains <= args.buffer_size and args.buffer_size % chains == 0):
            parser.error(f"--buffer-chains must divide --buffer-size ({args.buffer_size}), got {chains} for {name}")
    if not args.time_power > 0:
        parser.error(f"--time-power must be > 0, got {args.time_power}")
    if not (args.lr > 0 and args.init_std > 0):
        parser.error(f"--lr and --init-std must be > 0, got {args.lr} and {args.init_std}")


def _reference_dir(parser: argparse.ArgumentParser, data_dir: str | None) -> Path:
    from digmat.boltzmann import find_boltzmann_dir

    if data_dir is not None:  # find_boltzmann_dir(root) would fall back to the default places
        if not any(Path(data_dir).glob("*_split_*.npy")):
            parser.error(f"--data-dir {data_dir} holds no *_split_*.npy reference files")
        return Path(data_dir)
    found = find_boltzmann_dir()
    if found is None:
        repo = Path(__file__).resolve().parents[1]
        parser.error("no Boltzmann reference samples (*_split_*.npy) found; looked in $DIGMAT_BOLTZMANN, "
                     f"$DIGMAT_SHARED/data/boltzmann, {repo.parent / 'shared/data/boltzmann'} and "
                     f"{Path.cwd().parent / 'shared/data/boltzmann'}; pass --data-dir")
    return found


def evaluate(system, x: np.ndarray, ref: np.ndarray, ref_energy: np.ndarray, xw2_n: int) -> dict:
    """Sample quality of x (N, n*dim), x units, against reference rows ``ref`` and their energies."""
    from digmat.boltzmann import distance_w2, energy_w2, x_w2

    with torch.no_grad():
        energy = system.energy(torch.as_tensor(x, dtype=torch.float64)).numpy()
    finite = np.isfinite(x).all(1) & np.isfinite(energy)
    exploded = finite & (energy > ref_energy.max() + EXPLODED_KT * system.temperature)
    out = {"n": int(x.shape[0]), "nonfinite_fraction": float(1 - finite.mean()), "exploded_fraction": float(exploded.mean()),
           "mean_energy": None, "reference_mean_energy": float(ref_energy.mean()), **{k: None for k in METRICS}, "x_w2_n": 0}
    if not finite.any():
        return out
    xs, es = x[finite], energy[finite]
    ew2 = energy_w2(es, ref_energy)
    out.update(mean_energy=float(es.mean()), energy_w2=ew2, energy_w2_squared=ew2**2,
               distance_w2=distance_w2(xs, ref, system.n_particles, system.dim))
    k = min(xw2_n, xs.shape[0], ref.shape[0])
    if k:
        out.update(x_w2=x_w2(xs[:k], ref[:k], system.n_particles, system.dim), x_w2_n=k)
    return out


def mala_snapshots(space, log_target, x0: torch.Tensor, *, steps: int, snapshots: int, step_size: float,
                   generator: torch.Generator):
    """MALA from x0 (C, D): ``steps // 2`` adaptive burn-in steps (rate ADAPT_RATE), then the rest
    in ``snapshots`` plain legs; returns a MALAResult of the C * snapshots leg-end states (with
    their target values and scores) and all evaluations spent."""
    from digmat.core import MALAResult, mala

    burn = mala(space, log_target, x0, steps=steps // 2, step_size=step_size, adapt=True, adapt_rate=ADAPT_RATE,
                generator=generator)
    x, h, evaluations, legs = burn.x, burn.step_size, burn.evaluations, []
    rest = steps - steps // 2
    for k in range(snapshots):
        leg = mala(space, log_target, x, steps=rest // snapshots + (k < rest % snapshots), step_size=h, generator=generator)
        x, evaluations = leg.x, evaluations + leg.evaluations
        legs.append(leg)
    cat = lambda name: torch.cat([getattr(leg, name) for leg in legs])  # noqa: E731
    return MALAResult(x=cat("x"), acceptance=cat("acceptance"), step_size=cat("step_size"), evaluations=evaluations,
                      log_target=cat("log_target"), grad=cat("grad"))


def buffer_plan(args, name: str) -> tuple[int, int]:
    """(chains, MALA steps per chain) that fill ``name``'s first buffer: the options, else the
    system's full-mode defaults (SYSTEM_BUFFER), else one chain per buffer state."""
    plan = {} if args.smoke else SYSTEM_BUFFER[name]
    chains = args.buffer_chains or plan.get("buffer_chains") or args.buffer_size
    steps = args.init_mala_steps if args.init_mala_steps is not None else plan["init_mala_steps"]
    return chains, steps


def config_weight(config, term: str) -> float:
    """The weight of a PIDP loss term in ``config`` (1 for the total ``loss``)."""
    return 1.0 if term == "loss" else getattr(config, f"{term}_weight")


def reference_floor(system, val: np.ndarray | None, ref_energy: np.ndarray, n: int, draws: int = 5) -> dict | None:
    """Energy W2 of ``draws`` independent ``n``-row draws of the validation split against the test rows."""
    from digmat.boltzmann import energy_w2

    if val is None:
        return None
    values = []
    for k in range(draws):
        rows = np.random.default_rng(100 + k).choice(val.shape[0], size=min(n, val.shape[0]), replace=False)
        with torch.no_grad():
            values.append(energy_w2(system.energy(torch.as_tensor(val[rows])).numpy(), ref_energy))
    return {"energy_w2_median": float(np.median(values)), "energy_w2_min": float(min(values)),
            "energy_w2_max": float(max(values)), "draws": draws, "split": "val"}


def run_system(name: str, args, ref_all: np.ndarray, dtype: torch.dtype, val: np.ndarray | None = None) -> dict:
    from digmat.boltzmann import SYSTEMS
    from digmat.core import (Diffusion, NoiseSchedule, PIDPConfig, StateSpace, fit_pidp, mala, metropolis_corrector,
                             potential_score, sample_sde)
    from digmat.nn.pairnet import PairNet, PairNetConfig

    system, setting = SYSTEMS[name], SYSTEM_SETTINGS[name]
    rows = np.random.default_rng(0).choice(ref_all.shape[0], size=min(args.n, ref_all.shape[0]), replace=False)
    ref = ref_all[rows]
    with torch.no_grad():
        ref_energy = system.energy(torch.as_tensor(ref)).numpy()
    diffusion = Diffusion(StateSpace.euclidean(system.numel), NoiseSchedule())
    space, log_target = diffusion.space, system.training_log_target

    # ---------------------------------------------------------------- PIDP
    torch.manual_seed(args.seed)
    net_config = PairNetConfig(n_particles=system.n_particles, dim=system.dim, width=args.width, powers=setting["powers"])
    model = PairNet(net_config).to(dtype)
    config = PIDPConfig(steps=args.steps, batch_size=args.batch_size, lr=args.lr, divergence=args.divergence,
                        buffer_size=args.buffer_size, refresh_every=args.refresh_every, sampler_steps=args.sampler_steps,
                        mala_step_size=setting["refresh_h"], score_weight=args.score_weight, value_weight=args.value_weight,
                        fpe_weight=args.fpe_weight, tsm_weight=args.tsm_weight, time_power=args.time_power)
    gen = torch.Generator().manual_seed(args.seed)
    t0 = time.perf_counter()
    chains, init_steps = buffer_plan(args, name)
    init = args.init_std * torch.randn(chains, system.numel, generator=gen, dtype=dtype)
    start = mala_snapshots(space, log_target, init, steps=init_steps, snapshots=args.buffer_size // chains,
                           step_size=setting["mala_h0"], generator=gen)
    init_evaluations = start.evaluations

    def log(step: int, loss) -> None:
        if args.log_every and (step + 1) % args.log_every == 0:
            terms = " ".join(f"{k} {float(getattr(loss, k).detach()):.4g}" for k in ("loss", "score", "value", "fpe", "tsm"))
            print(f"[{name}] step {step + 1}: {terms}", file=sys.stderr, flush=True)

    history = fit_pidp(diffusion, model, log_target, start.x, config, init_target=(start.log_target, start.grad),
                       generator=gen, callback=log)
    train_seconds = time.perf_counter() - t0
    budget = init_evaluations + history.evaluations
    per_chain = budget // args.n  # each of the two MALA calls below spends one extra evaluation per chain
    if per_chain < 2:
        raise SystemExit(f"error: PIDP spent {budget} evaluations on {name}, fewer than 2 per MALA chain (-n {args.n}); "
                         "raise --init-mala-steps or --buffer-size, or lower -n")
    t0 = time.perf_counter()
    y = sample_sde(diffusion, potential_score(model), args.n, steps=args.sampler_steps, generator=gen, dtype=dtype).x
    sample_seconds = time.perf_counter() - t0
    raw = evaluate(system, system.from_state(y).double().numpy(), ref, ref_energy, args.xw2_n)
    t0 = time.perf_counter()
    corrected = metropolis_corrector(space, model, y, steps=args.corrector_steps, step_size=setting["refresh_h"], generator=gen)
    corrector_seconds = time.perf_counter() - t0
    # importance resampling: the corrected states follow exp(l(y, 0)); weigh them by the target
    with torch.no_grad():
        log_w = (log_target(corrected.x.double()) - corrected.log_target.double()).nan_to_num(nan=-np.inf)
    weights = torch.softmax(log_w, 0)
    ess = float(1.0 / (weights**2).sum())
    picked = torch.multinomial(weights, args.n, replacement=True, generator=gen)
    reweighted = {**evaluate(system, system.from_state(corrected.x[picked]).double().numpy(), ref, ref_energy, args.xw2_n),
                  "ess": ess, "ess_fraction": ess / args.n, "distinct_states": int(picked.unique().numel()),
                  "target_evaluations": args.n}
    tail = max(1, len(history.loss) // 10)
    pidp = {"evaluations": budget, "evaluations_init_mala": init_evaluations, "buffer_chains": chains,
            "init_mala_steps": init_steps, "evaluations_training": history.evaluations,
            "train_seconds": train_seconds, "sample_seconds": sample_seconds + corrector_seconds,
            **evaluate(system, system.from_state(corrected.x).double().numpy(), ref, ref_energy, args.xw2_n),
            "without_corrector": {k: raw[k] for k in ("energy_w2", "energy_w2_squared", "x_w2", "distance_w2", "mean_energy",
                                                      "nonfinite_fraction", "exploded_fraction")},
            "reweighted": reweighted,
            "corrector": {"steps": args.corrector_steps, "model_calls": corrected.evaluations, "seconds": corrector_seconds,
                          "acceptance": float(corrected.acceptance.mean()) if args.corrector_steps else None},
            "final_loss": {k: float(np.nanmean(getattr(history, k)[-tail:])) if config_weight(config, k) else None
                           for k in ("loss", "score", "value", "fpe", "tsm")},
            "init_mala_acceptance": float(start.acceptance.mean()),
            "init_buffer_energy_w2": evaluate(system, system.from_state(start.x).double().numpy(), ref, ref_energy, 0)["energy_w2"]}
    if args.save:
        path = Path(args.save)
        if len(args.system) > 1:
            path = path.with_name(f"{path.stem}_{name}{path.suffix}")
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save({"system": name, "network": net_config.to_dict(), "state_dict": model.state_dict(),
                    "pidp": vars(config), "dtype": str(dtype)}, path)
        pidp["saved"] = str(path)

    # ---------------------------------------------------------------- MALA at equal cost
    burn = (per_chain - 2) // 2
    gen = torch.Generator().manual_seed(args.seed + 1)
    t0 = time.perf_counter()
    x0 = args.init_std * torch.randn(args.n, system.numel, generator=gen, dtype=torch.float64)
    chain = mala_snapshots(space, log_target, x0, steps=per_chain - 2, snapshots=1, step_size=setting["mala_h0"], generator=gen)
    mala_seconds = time.perf_counter() - t0
    baseline = {"evaluations": chain.evaluations, "train_seconds": 0.0, "sample_seconds": mala_seconds,
                **evaluate(system, system.from_state(chain.x).numpy(), ref, ref_energy, args.xw2_n),
                "chains": args.n, "burn_in_steps": burn, "sampling_steps": per_chain - 2 - burn,
                "acceptance": float(chain.acceptance.mean()), "step_size_median": float(chain.step_size.median())}

    ratio = {k: pidp[k] / baseline[k] if pidp[k] is not None and baseline[k] else None
             for k in ("evaluations", *METRICS)}
    return {"system": system.describe(), "reference": {"split": "test", "n": int(ref.shape[0]), "rows_seed": 0},
            "pidp": pidp, "mala": baseline, "ratio_pidp_to_mala": ratio, "published": PUBLISHED[name],
            "reference_floor": reference_floor(system, val, ref_energy, args.n),
            "published_note": "POT emd2_1d of energies (= energy_w2_squared here) in iDEM's code; some code reports its square root",
            "long_mcmc": "not run (the reference splits are long-MCMC samples); published figure quoted"}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--system", action="append", help="dw4 or lj13 (repeatable; default both)")
    parser.add_argument("--smoke", action="store_true", help="tiny settings (seconds); explicit options still win")
    parser.add_argument("--steps", type=int, help=f"PIDP optimiser steps (default {FULL['steps']})")
    parser.add_argument("--batch-size", type=int, help=f"collocation states per step (default {FULL['batch_size']})")
    parser.add_argument("--width", type=int, help=f"PairNet hidden width (default {FULL['width']})")
    parser.add_argument("--lr", type=float, help=f"Adam learning rate (default {FULL['lr']})")
    parser.add_argument("-n", type=int, help=f"samples of each method and reference rows (default {FULL['n']})")
    parser.add_argument("--sampler-steps", type=int, help=f"reverse-SDE steps, also for buffer refreshes (default {FULL['sampler_steps']})")
    parser.add_argument("--buffer-size", type=int, help=f"PIDP collocation buffer (default {FULL['buffer_size']})")
    parser.add_argument("--refresh-every", type=int, help=f"PIDP buffer refresh period (default {FULL['refresh_every']})")
    parser.add_argument("--buffer-chains", type=int, default=None,
                        help="MALA chains that fill the first buffer (buffer-size / buffer-chains states each, spaced along "
                             "the chain's second half; default: one state per chain)")
    parser.add_argument("--init-mala-steps", type=int,
                        help="MALA steps per buffer chain, half of them adaptive (default: per system, " +
                             ", ".join(f"{k} {v['init_mala_steps']}" for k, v in SYSTEM_BUFFER.items()) + ")")
    parser.add_argument("--init-std", type=float, default=1.0, help="std of the broad starting draws, state units (default 1)")
    parser.add_argument("--xw2-n", type=int, help=f"samples per side for x W2, 0 = skip (default {FULL['xw2_n']})")
    for term, default in WEIGHTS.items():
        parser.add_argument(f"--{term}-weight", type=float, default=default, help=f"PIDP {term} term's weight (default {default})")
    parser.add_argument("--time-power", type=float, default=2.0, help="PIDP noise times t = u^p (default 2: more at low noise)")
    parser.add_argument("--corrector-steps", type=int, help=f"MALA steps on the model's own l(x, 0) after sampling (default {FULL['corrector_steps']})")
    parser.add_argument("--divergence", choices=("hutchinson", "exact"), default="hutchinson", help="Laplacian in the FPE residual")
    parser.add_argument("--dtype", choices=("float32", "float64"), default="float32",
                        help="PIDP model and sampling dtype (float32: see the module docstring)")
    parser.add_argument("--log-every", type=int, default=0, help="print the PIDP loss terms to stderr every this many steps (0: never)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--save", default=None, help="write the trained model (state_dict + configs) here; with several systems NAME_<system>.pt")
    parser.add_argument("--data-dir", default=None, help="folder of the reference *_split_*.npy files")
    args = parser.parse_args(argv)
    _resolve(parser, args)
    folder = _reference_dir(parser, args.data_dir)

    from digmat.boltzmann import load_reference

    references, floors = {}, {}
    for name in args.system:
        try:
            references[name] = load_reference(name, "test", folder)
        except (FileNotFoundError, ValueError) as err:
            parser.error(f"reference data for {name}: {err}")
        try:
            floors[name] = load_reference(name, "val", folder)
        except (FileNotFoundError, ValueError):
            floors[name] = None      # the floor is then not reported
    dtype = getattr(torch, args.dtype)
    systems = {name: run_system(name, args, references[name], dtype, floors[name]) for name in args.system}
    machine = {"platform": platform.platform(), "cpus": os.cpu_count(), "torch": torch.__version__, "threads": torch.get_num_threads()}
    config = {k: v for k, v in vars(args).items()}
    config.update(reference_dir=str(folder), system_settings={n: SYSTEM_SETTINGS[n] for n in args.system},
                  exploded_above_reference_max_kT=EXPLODED_KT)
    out = {"systems": systems, "config": config, "machine": machine}
    print(json.dumps(out, indent=1))
    return out


if __name__ == "__main__":
    torch.set_num_threads(1)
    main()
