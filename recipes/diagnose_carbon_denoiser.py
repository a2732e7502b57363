"""Why a crystal score model loses carbon's bonds: diagnostics of its denoiser and of the oracle (JSON).

``band-fit``
    Fine-tune a model only at positional noise levels in ``--band LO HI`` (Å) on the first
    ``--subset`` structures and report its relative noise-prediction error on those same
    structures before and after. A network that cannot lower it on a few memorisable
    structures lacks the capacity or the inputs, not the training time.
``relax-denoiser``
    Noise structures to each level as the forward process does, relax the noised positions
    (fixed cell) with a calculator, and score ``k (x_t - x_relaxed)`` as a noise prediction
    (k = 1 and the least-squares k) beside the model's own on the same draws; the cell stays
    fixed. A local
    physical minimiser is a denoiser that knows the bonds; where it is no better than the
    network, the noise level is locally ambiguous.
``oracle-tolerance``
    How ordered a carbon structure must be for the tight-binding oracle to keep its gap: the
    split's gapped structures (TB gap above ``--gapped`` eV) with Gaussian displacements of
    each noise level (Å per Cartesian coordinate, fixed cell), their TB gaps and
    nearest-neighbour distance quantiles. No model; the scale against which samples' bond
    spread (``nn_distance_quantiles``) can be read.

Relative error is ``||eps_hat - eps||^2 / ||eps||^2`` over fractional coordinates (0 = exact,
1 = predicting zero), as in ``train_carbon.py profile``.

Examples::

    python recipes/diagnose_carbon_denoiser.py band-fit --model carbon24 --subset 32 --band 0.15 0.35 --steps 3000
    python recipes/diagnose_carbon_denoiser.py relax-denoiser --model carbon24 --split heldout -n 24 --noise 0.1 0.2 --calculator chgnet
    python recipes/diagnose_carbon_denoiser.py oracle-tolerance -n 64 --noise 0 0.01 0.02 0.03 0.05 0.1
"""

from __future__ import annotations

import argparse
import json
import platform
import time
import numpy as np
import torch


def _structures(args):
    if args.structures:
        from ase.io import read

        return read(args.structures, index=":")
    from digmat.design.carbon24 import load_carbon24

    return load_carbon24(args.data_dir, split=args.split)


def _profile(model, structures, noise, seed):
    from digmat.models import crystal_denoising_profile

    was_training = model.training
    model.eval()
    rel = crystal_denoising_profile(model, structures, noise, repeats=4, generator=torch.Generator().manual_seed(seed))
    model.train(was_training)
    return {k: [round(float(x), 4) for x in v] for k, v in rel.items()}


def band_fit(args) -> dict:
    """Fine-tune in a noise band on a few structures; their denoising error before and after."""
    from digmat.models import CrystalDataset, CrystalScoreModel, collate_crystals, crystal_dsm_loss

    torch.manual_seed(args.seed)
    structures = _structures(args)[: args.subset]
    start = CrystalScoreModel.from_checkpoint(args.model)
    model = CrystalScoreModel(start.config)
    if not args.scratch:
        model.load_state_dict(start.state_dict())
    model.train()
    lo, hi = (float(t) for t in model.time_of_noise(args.band))
    data = CrystalDataset(structures, model.config.state)
    report = {"model": str(args.model), "scratch": args.scratch, "structures": len(structures), "band_A": args.band, "steps": args.steps,
              "noise_A": args.noise, "before": _profile(model, structures, args.noise, args.seed), "log": []}
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr)
    gen = torch.Generator().manual_seed(args.seed)
    t0 = time.perf_counter()
    for step in range(1, args.steps + 1):
        idx = torch.randint(len(data), (args.batch_size,), generator=gen).tolist()
        loss = crystal_dsm_loss(model, collate_crystals([data[i] for i in idx]), gen, t_range=(lo, hi))
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if step % args.log_every == 0 or step == args.steps:
            report["log"].append({"step": step, "loss": round(loss.item(), 4), "seconds": round(time.perf_counter() - t0, 1)})
    report["after"] = _profile(model, structures, args.noise, args.seed)
    report["seconds"] = round(time.perf_counter() - t0, 1)
    return report


def relax_denoiser(args) -> dict:
    """A calculator's local relaxation of noised structures as a noise prediction, beside the model's."""
    from ase.optimize import FIRE

    from digmat.calculators import get_calculator
    from digmat.models import CrystalScoreModel

    model = CrystalScoreModel.from_checkpoint(args.model)
    structures = _structures(args)[: args.n]
    calc = get_calculator(args.calculator)
    schedule, gen = model.config.schedule, torch.Generator().manual_seed(args.seed)
    rows = []
    for level in args.noise:
        t = model.time_of_noise([level])
        relaxed, truth, predicted, steps, t0 = [], [], [], 0, time.perf_counter()
        for atoms in structures:
            system = model.system(atoms.numbers)
            diffusion = system.diffusion(schedule)
            x0 = system.to_state(atoms)
            xt, eps = diffusion.perturb(x0, t, generator=gen)
            n3 = 3 * system.num_atoms
            std = diffusion.noise_std(t, x0)[0, :n3].numpy()
            with torch.no_grad():
                predicted.append(model.eps(system, xt, t)[0, :n3].numpy())
            noisy = system.to_atoms(xt)[0]
            noisy.calc = calc
            before = noisy.get_scaled_positions(wrap=False)
            opt = FIRE(noisy, logfile=None)
            opt.run(fmax=args.fmax, steps=args.max_steps)
            steps += opt.nsteps
            shift = before - noisy.get_scaled_positions(wrap=False)
            relaxed.append((shift - np.round(shift)).reshape(-1) / std)
            truth.append(eps[0, :n3].numpy())
        d, e, h = (np.concatenate(a) for a in (relaxed, truth, predicted))
        k = float(d @ e / (d @ d))

        def rel(p):
            return round(float(((p - e) ** 2).sum() / (e**2).sum()), 4)

        rows.append({"noise_A": level, "t": round(float(t), 5), "relaxation": rel(d), "relaxation_scaled": rel(k * d), "k": round(k, 3),
                     "model": rel(h), "mean_relax_steps": round(steps / len(structures), 1), "seconds": round(time.perf_counter() - t0, 1)})
    return {"model": str(args.model), "calculator": args.calculator, "structures": len(structures), "rows": rows}


def oracle_tolerance(args) -> dict:
    """The TB gap of gapped structures under Gaussian displacements of each level (fixed cell)."""
    from digmat.design import TightBindingGap
    from digmat.design.evaluate import nn_distance_quantiles

    oracle = TightBindingGap(progress=False, n_jobs=args.jobs)
    structures = _structures(args)
    known = np.array([a.info.get("tb_gap", np.nan) for a in structures], dtype=float)
    if np.isnan(known).any():
        known = oracle(structures)
    gapped = [a for a, g in zip(structures, known) if g > args.gapped][: args.n]
    if not gapped:
        raise SystemExit(f"no structure of the split has a TB gap above {args.gapped} eV")
    rng = np.random.default_rng(args.seed)
    rows = []
    for level in args.noise:
        t0 = time.perf_counter()
        noised = [atoms.copy() for atoms in gapped]
        for atoms in noised:
            atoms.rattle(level, rng=rng)
        gaps = oracle(noised)
        rows.append({"noise_A": level, "gapped_share": round(float(np.mean(gaps > args.gapped)), 4),
                     "gap_quantiles_ev": [round(float(q), 3) for q in np.nanquantile(gaps, [0.1, 0.5, 0.9])],
                     "nn_distance_quantiles_A": [round(float(q), 3) for q in nn_distance_quantiles(noised)],
                     "seconds": round(time.perf_counter() - t0, 1)})
    return {"structures": len(gapped), "gapped_above_ev": args.gapped,
            "clean_gap_quantiles_ev": [round(float(q), 3) for q in np.quantile(known[known > args.gapped][: args.n], [0.1, 0.5, 0.9])],
            "rows": rows}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="what", required=True)
    fit = sub.add_parser("band-fit", help="fine-tune in a noise band on a few structures")
    fit.add_argument("--subset", type=int, default=32, help="first N structures of the split")
    fit.add_argument("--band", type=float, nargs=2, default=[0.15, 0.35], metavar=("LO", "HI"), help="positional noise band, Å")
    fit.add_argument("--steps", type=int, default=3000)
    fit.add_argument("--batch-size", type=int, default=32)
    fit.add_argument("--lr", type=float, default=3e-4)
    fit.add_argument("--scratch", action="store_true", help="fresh weights of the model's architecture instead of its own")
    fit.add_argument("--log-every", type=int, default=250)
    fit.add_argument("--noise", type=float, nargs="+", default=[0.1, 0.2, 0.3], help="levels of the before/after profile, Å")
    fit.set_defaults(func=band_fit)
    relax = sub.add_parser("relax-denoiser", help="a calculator's relaxation as a denoiser")
    relax.add_argument("-n", type=int, default=24, help="structures")
    relax.add_argument("--noise", type=float, nargs="+", default=[0.1, 0.2, 0.3], help="positional noise levels, Å")
    relax.add_argument("--calculator", default="chgnet")
    relax.add_argument("--fmax", type=float, default=0.05, help="eV/Å")
    relax.add_argument("--max-steps", type=int, default=300)
    relax.set_defaults(func=relax_denoiser)
    for p in (fit, relax):
        p.add_argument("--model", default="carbon24", help="crystal checkpoint or shipped model name")
    oracle = sub.add_parser("oracle-tolerance", help="the TB oracle's gap under displacement noise (no model)")
    oracle.add_argument("-n", type=int, default=64, help="gapped structures")
    oracle.add_argument("--noise", type=float, nargs="+", default=[0.0, 0.01, 0.02, 0.03, 0.05, 0.1],
                        help="Gaussian displacement per Cartesian coordinate, Å")
    oracle.add_argument("--gapped", type=float, default=0.5, help="eV: what counts as gapped")
    oracle.add_argument("--jobs", type=int, default=1, help="processes for the oracle")
    oracle.set_defaults(func=oracle_tolerance)
    for p in (fit, relax, oracle):
        p.add_argument("--structures", default=None, help="structures file (ASE-readable) instead of Carbon-24")
        p.add_argument("--split", choices=("train", "heldout"), default="train")
        p.add_argument("--data-dir", default=None, help="folder with Carbon-24 val.csv/test.csv")
        p.add_argument("--seed", type=int, default=0)
        p.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    report = args.func(args)
    report["machine"] = {"platform": platform.platform(), "torch": torch.__version__, "threads": torch.get_num_threads()}
    print(json.dumps(report, indent=1))
    return report


if __name__ == "__main__":
    main()
