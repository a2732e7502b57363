"""``digmat demo``: the diffusion core on an exact target, end to end, in a few seconds.

The target is a three-well mixture on a state with two periodic entries (an in-plane
position on a 2.5 x 2.5 cell, like an adatom on a surface) and one Euclidean entry (a
height). Because its score is known exactly at every diffusion time, the demo reports the
errors of every capability against the truth: sampled site weights (ODE and SDE), the
log-density from the probability-flow ODE, and a latent-space path between two wells.
"""

from __future__ import annotations

import argparse
import json
import platform
import time

from digmat.cli.options import add_device_option, add_json_option, at_least, resolve_device


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-n", "--num-samples", type=int, default=4000, help="samples per sampler (default 4000)")
    parser.add_argument("--steps", type=at_least(2), default=25, help="Heun steps of the ODE sampler (2*steps-1 evaluations)")
    parser.add_argument("--sde-steps", type=at_least(1), default=1000, help="steps of DiG's ancestral SDE sampler")
    parser.add_argument("--seed", type=int, default=0)
    add_device_option(parser, what="the demo")
    add_json_option(parser)


def _target():
    import torch

    from digmat.core import Diffusion, ProductMixture, StateSpace

    space = StateSpace((3,), period=torch.tensor([2.5, 2.5, 0.0]))
    means = torch.tensor([[0.5, 0.75, -1.5], [1.75, 1.5, 1.0], [0.0, 2.25, 0.0]])
    stds = torch.tensor([[0.12, 0.2, 0.3], [0.25, 0.15, 0.5], [0.18, 0.18, 0.2]])
    return ProductMixture(Diffusion(space), torch.tensor([0.5, 0.3, 0.2]), means, stds)


def run(args: argparse.Namespace) -> int:
    import torch
    from tqdm import tqdm

    from digmat.core import ODEConfig, interpolate, log_prob, sample_ode, sample_sde

    if args.num_samples < 10:
        raise ValueError("--num-samples must be at least 10")
    device = resolve_device(args.device)
    mix = _target()
    d = mix.diffusion
    score = lambda x, t: mix.score(x, t)  # noqa: E731
    true_w = mix.weights.tolist()
    report: dict = {"target": "3 wells on a 2.5x2.5 torus x R", "true_weights": [round(w, 4) for w in true_w]}
    gen = torch.Generator(device="cpu").manual_seed(args.seed)

    def weights(x):
        labels = mix.component_posterior(x.cpu()).argmax(1)
        return (torch.bincount(labels, minlength=3).double() / x.shape[0]).tolist()

    tasks = ["ode", "sde", "density", "path"]
    with tqdm(tasks, desc="digmat demo", disable=args.json, leave=False) as bar:
        for task in bar:
            bar.set_postfix_str(task)
            t0 = time.perf_counter()
            if task == "ode":
                out = sample_ode(d, score, args.num_samples, ODEConfig("heun", args.steps), generator=gen, device=device, dtype=torch.float64)
                w = weights(out.x)
                report["ode"] = {"evaluations": out.nfe, "weights": [round(v, 4) for v in w]}
            elif task == "sde":
                out = sample_sde(d, score, args.num_samples, steps=args.sde_steps, generator=gen, device=device, dtype=torch.float64)
                w = weights(out.x)
                report["sde"] = {"evaluations": out.nfe, "weights": [round(v, 4) for v in w]}
            elif task == "density":
                x, _ = mix.sample(64, generator=gen)
                ref = mix.log_prob(x, torch.tensor(d.schedule.t_min, dtype=torch.float64))
                res = log_prob(d, score, x.to(device))
                report["density"] = {"points": 64, "max_abs_error_nats": float((res.log_prob.cpu() - ref).abs().max()), "evaluations": res.nfe}
            else:
                xa, xb = mix.means[0], mix.means[1]
                path = interpolate(d, score, xa.to(device), xb.to(device), num_points=41, mode="linear")
                frac = torch.linspace(0, 1, 41, dtype=torch.float64).unsqueeze(1)
                straight = d.space.wrap(xa + frac * d.space.difference(xb[None], xa[None]))
                report["path"] = {
                    "points": 41,
                    "min_log_density_latent_path": float(mix.log_prob(path.path.cpu()).min()),
                    "min_log_density_straight_line": float(mix.log_prob(straight).min()),
                }
            if task in ("ode", "sde"):
                report[task]["max_weight_error"] = round(max(abs(a - b) for a, b in zip(w, true_w)), 4)
            report[task]["seconds"] = round(time.perf_counter() - t0, 3)
    report["machine"] = {"torch": torch.__version__, "device": str(device), "threads": torch.get_num_threads(), "python": platform.python_version()}
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(f"target: {report['target']}; true site weights {report['true_weights']}")
    for key, label in (("ode", "probability-flow ODE (Heun)"), ("sde", "reverse SDE (DiG ancestral)")):
        r = report[key]
        print(f"{label:32s} {r['evaluations']:5d} evaluations  weights {r['weights']}  max error {r['max_weight_error']:.4f}  {r['seconds']:.1f} s")
    r = report["density"]
    print(f"{'log-density (ODE, exact trace)':32s} {r['evaluations']:5d} evaluations  max |error| {r['max_abs_error_nats']:.4f} nats on {r['points']} points")
    r = report["path"]
    print(
        f"{'latent path between wells':32s} min log-density {r['min_log_density_latent_path']:.2f} "
        f"(straight line in data space: {r['min_log_density_straight_line']:.2f})"
    )
    return 0
