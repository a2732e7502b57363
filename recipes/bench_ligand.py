"""Benchmarks of the ligand module: what the physics costs, and how a trained model scores.

With ``--model`` (a ligand checkpoint or shipped name): for each complex, ``-n`` poses from the
model, scored against the crystal pose (most probable mode and top-5 within 2 Å), PoseBusters
(share of ``--judge`` random poses passing every check), ``--reweight CALC`` (the top modes and the
crystal pose relaxed and weighed by the calculator: top-1 / top-5 within 2 Å after reweighting,
the crystal's free energy against the modes'), the reference ensemble in
``--reference`` (total variation of the binding-mode populations, ligand-conformer coverage
COV-R at 0.75 Å) and time per 256 poses; complexes the model was not trained on are marked
held out (:func:`digmat.tasks.ligand_eval.evaluate_complex`). ``--profile T ...`` adds the
model's noise-prediction errors (centroid, orientation, torsions) at those times beside the
Bayes-optimal denoiser of the reference ensemble (:mod:`digmat.tasks.ligand_profile`).
``--log-prob STEPS`` (raw samples: ``--refine 0 --minimize 0``) adds each pose's log-density under
the model and the samples weighed towards Vina's Boltzmann distribution by it
(:func:`digmat.tasks.ligand_eval.importance_figures`: effective sample size, TV to the reference
as Vina weighed it, before and after). Example::

    python recipes/bench_ligand.py 1uou 1s3v 1of6 1ia1 --model ligand --out docs/results/bench_ligand_model.json

Without ``--model``, the physics:

For each PoseBusters complex: GFN-FF (ALPB water) energy + forces of the crystal ligand in
pockets of increasing radius (first call, which sets up the topology, and the median of
repeated calls with the ligand moved); AutoDock Vina's own Python API (score of a loaded pose,
and set_ligand_from_string + score for a new pose); digmat's torch Vina (direct pairs and
maps) per pose in batches; and the agreement of the torch score with Vina's.  Prints JSON
with the machine; ratios are against Vina's per-new-pose cost measured in the same run.

Example::

    python recipes/bench_ligand.py 1uou 1s3v --threads 1 --out docs/results/bench_ligand_physics.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from digmat.ligand import extract_pocket, ligand_atoms, read_ligand
from digmat.ligand.checks import posebusters_example
from digmat.ligand.energy import VinaPoseEnergy, pocket_radius_for_maps
from digmat.ligand.physics import complex_atoms, gfnff_calculator
from digmat.ligand.pose import PoseSpace
from digmat.ligand.vina import prepare_ligand, receptor_ad_types, write_receptor_pdbqt


def _median_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def bench_gfnff(protein, lig, radii, repeats: int) -> list[dict]:
    rows = []
    heavy = lig.positions[lig.numbers > 1]
    for radius in radii:
        pocket = extract_pocket(protein, heavy, radius=radius)
        cx = complex_atoms(pocket, lig)
        cx.calc = gfnff_calculator(cx.info["charge"])
        start = time.perf_counter()
        cx.get_forces()
        first = time.perf_counter() - start

        def again():
            cx.positions[-1] += 1e-3  # a new geometry, same topology
            cx.get_forces()

        rows.append({"pocket_radius_A": radius, "atoms": len(cx), "first_call_s": first,
                     "energy_forces_s": _median_time(again, repeats)})
    return rows


def bench_vina(protein, mol, lig, batch_sizes, repeats: int, spacing: float = 0.375) -> dict:
    import vina

    heavy = lig.positions[lig.numbers > 1]
    center = heavy.mean(axis=0)
    space = PoseSpace.from_mol(mol)
    extent = float(np.linalg.norm(space.template[space.heavy], axis=1).max())
    pocket = extract_pocket(protein, center, radius=pocket_radius_for_maps(extent + 2.0))
    atoms = pocket.atoms
    types = receptor_ad_types(atoms.get_chemical_symbols(), list(atoms.arrays["atomtypes"]),
                              list(atoms.arrays["residuenames"]), atoms.positions)
    ligand = prepare_ligand(mol)
    start = time.perf_counter()
    energy = VinaPoseEnergy(pocket, mol, center, half_width=extent + 2.0, spacing=spacing)
    maps_s = time.perf_counter() - start
    with tempfile.TemporaryDirectory() as tmp:
        receptor = Path(tmp, "receptor.pdbqt")
        receptor.write_text(write_receptor_pdbqt(types, atoms.positions, list(atoms.arrays["atomtypes"]),
                                                 list(atoms.arrays["residuenames"])))
        v = vina.Vina(sf_name="vina", cpu=1, verbosity=0)
        v.set_receptor(str(receptor))
        v.set_ligand_from_string(ligand.pdbqt)
        v.compute_vina_maps(center=center.tolist(), box_size=[2 * (extent + 2.0)] * 3)
        reference = float(v._vina.score()[0])
        loaded_s = _median_time(v.score, repeats * 10)

        def new_pose():
            v.set_ligand_from_string(ligand.pdbqt)
            v.score()

        new_pose_s = _median_time(new_pose, repeats)
    x0 = torch.as_tensor(lig.positions)[None]
    with torch.no_grad():
        ours = float(energy.score(x0)["total"][0])
    g = torch.Generator().manual_seed(0)
    rows = []
    for b in batch_sizes:
        x = x0 + 0.3 * torch.randn(b, *x0.shape[1:], generator=g, dtype=x0.dtype)
        with torch.no_grad():
            direct = _median_time(lambda: energy.score(x), repeats) / b
            maps = _median_time(lambda: energy(x), repeats) / b
        rows.append({"batch": b, "direct_s_per_pose": direct, "maps_s_per_pose": maps,
                     "speedup_maps_vs_vina_new_pose": new_pose_s / maps})
    return {"receptor_atoms": int(energy.score.rec_pos.shape[0]), "maps_points": list(energy.maps.shape),
            "maps_types": len(energy.maps.types), "maps_build_s": maps_s, "vina_score_loaded_s": loaded_s,
            "vina_set_ligand_and_score_s": new_pose_s, "crystal_vina_score": reference,
            "crystal_torch_score": ours, "abs_difference_kcal_mol": abs(reference - ours), "batches": rows}


def bench_model(args) -> dict:
    """Score the model on each case (see the module docstring)."""
    from digmat.pretrained import load_model
    from digmat.tasks.ligand_data import load_complex
    from digmat.tasks.ligand_eval import evaluate_complex, importance_figures

    model = load_model(args.model)
    trained = set(model.config.training_complexes)
    results = {}
    for name in args.cases:
        folder = args.reference / name
        box = json.loads((folder / "summary.json").read_text())["box_radius_A"] if folder.is_dir() else 6.0
        found = load_complex(name, model, box_radius=box, folder=args.reference)
        figures, ensemble = evaluate_complex(model, found, reference=folder if folder.is_dir() else None,
                                             num=args.num, steps=args.steps, grid_power=args.grid_power,
                                             refine_steps=args.refine, minimize_steps=args.minimize, seed=args.seed,
                                             judge=args.judge, judge_reference=args.judge_reference,
                                             reweight=args.reweight, reweight_config=args.reweight_config,
                                             reference_weights=args.reference_weights)
        results[name] = {"held_out": name not in trained, **figures}
        if args.log_prob:
            results[name]["importance"] = importance_figures(model, ensemble, steps=args.log_prob,
                                                             reference=folder if folder.is_dir() else None)
        if args.profile and folder.is_dir():
            results[name]["denoising_profile"] = profile(model, found.system, folder, args)
        print(f"{name}: {json.dumps(results[name])}", file=sys.stderr, flush=True)
    return {"model": str(args.model), "training_complexes": sorted(trained), "results": results}


def profile(model, system, folder: Path, args) -> dict:
    """The model's noise-prediction errors per block beside the oracle's at each ``--profile`` time:
    the oracle pooling every reference pose (the training loss's floor) and, on poses of chains
    0-7, the oracle knowing only chains 8-15 (:mod:`digmat.tasks.ligand_profile`)."""
    from digmat.tasks.ligand_profile import denoising_profile, reference_states

    chains = np.load(folder / "samples.npz")["weights"].shape[1]
    weights = args.reference_weights
    half_a = reference_states(system, folder, chains=range(chains // 2), weights=weights)
    half_b = reference_states(system, folder, chains=range(chains // 2, chains), weights=weights)
    full = reference_states(system, folder, weights=weights)
    kwargs = dict(num=args.profile_poses, seed=args.seed)
    return {"floor_all_poses": denoising_profile(model, system, *full, args.profile, **kwargs),
            "other_half": denoising_profile(model, system, *half_a, args.profile, pool=half_b, **kwargs)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("cases", nargs="+", help="PoseBusters examples (1ia1 1of6 1s3v 1uou); with --model also folders of --reference")
    parser.add_argument("--radii", type=float, nargs="+", default=[5.0, 6.0, 8.0], help="GFN-FF pocket radii, Å")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 64, 1024])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--spacing", type=float, default=0.375, help="map spacing, Å")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, help="also write the JSON here")
    parser.add_argument("--model", help="ligand checkpoint or shipped model name: benchmark the model instead")
    parser.add_argument("--reference", type=Path, default=Path("data/ligands"), help="reference ensembles (model mode)")
    parser.add_argument("-n", "--num", type=int, default=256, help="poses per complex (model mode)")
    parser.add_argument("--steps", type=int, default=200, help="reverse-SDE steps (model mode)")
    parser.add_argument("--grid-power", type=float, default=1.0, help="step grid t = u^p (model mode)")
    parser.add_argument("--refine", type=int, default=0, help="Metropolis steps under Vina after sampling (model mode)")
    parser.add_argument("--minimize", type=int, default=0,
                        help="local-minimisation iterations of every pose under Vina, last (model mode)")
    parser.add_argument("--judge-reference", type=int, default=0,
                        help="reference poses checked by PoseBusters, the baseline (model mode)")
    parser.add_argument("--reweight", default=None, metavar="CALC",
                        help="also weigh the top modes and the crystal pose with CALC (gfnff, gfnff-vacuum; model mode)")
    parser.add_argument("--reweight-modes", type=int, default=5, metavar="K", help="with --reweight: modes relaxed, most populated first")
    parser.add_argument("--reweight-starts", type=int, default=2, metavar="K",
                        help="with --reweight: lowest-Vina poses relaxed per mode (its minimum is the lowest reached)")
    parser.add_argument("--reference-weights", default=None, metavar="CALC",
                        help="score against the references' modes as CALC weighed them (weights_CALC.npz/.json of "
                             "recipes/weigh_reference_ligands.py; model mode)")
    parser.add_argument("--judge", type=int, default=128, help="poses checked by PoseBusters (model mode)")
    parser.add_argument("--profile", type=float, nargs="*", default=[],
                        help="also the denoising profile at these times against the reference's oracle (model mode)")
    parser.add_argument("--profile-poses", type=int, default=256, help="noised poses per profile time")
    parser.add_argument("--log-prob", type=int, default=0, metavar="STEPS",
                        help="also each raw pose's log-density (STEPS ODE steps) and the samples weighed towards Vina's "
                             "Boltzmann distribution by it: effective sample size, TV to the Vina-weighted reference "
                             "(needs --refine 0 --minimize 0; model mode)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.log_prob and (args.refine or args.minimize or not args.model):
        print("error: --log-prob weighs the model's raw samples: use it with --model and --refine 0 --minimize 0",
              file=sys.stderr)
        return 2
    torch.set_num_threads(args.threads)
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    args.reweight_config = None
    if args.reweight is not None:
        from digmat.ligand import ModeEnergyConfig, check_ligand_calculator

        try:
            check_ligand_calculator(args.reweight)
            args.reweight_config = ModeEnergyConfig(max_modes=args.reweight_modes, starts_per_mode=args.reweight_starts)
        except ValueError as err:
            print(f"error: --reweight: {err}", file=sys.stderr)
            return 2
        if not args.model:
            print("error: --reweight needs --model", file=sys.stderr)
            return 2
    if args.model:
        return _report(bench_model(args), args)
    results = {}
    for name in args.cases:
        try:
            protein, sdf = posebusters_example(name)
        except ValueError as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
        mol = read_ligand(sdf)
        lig = ligand_atoms(mol)
        results[name] = {"ligand_atoms": len(lig), "gfnff": bench_gfnff(protein, lig, args.radii, args.repeats),
                         "vina": bench_vina(protein, mol, lig, args.batches, args.repeats, args.spacing)}
    return _report({"results": results}, args)


def _report(figures: dict, args) -> int:
    """Print the figures with the threads and the machine as JSON (and write them to ``--out``)."""
    out = {**figures, "threads": args.threads,
           "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "torch": torch.__version__}}
    text = json.dumps(out, indent=1)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
