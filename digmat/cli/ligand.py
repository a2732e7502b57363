"""``digmat ligand``: binding modes of a ligand in a protein pocket, with probabilities.

Draws ``-n`` poses of the ligand (an SDF/MOL/MOL2 file, whose pose is the reference and whose
geometry is kept; or a SMILES with ``--center``) in the fixed protein (PDB/mmCIF) with the
shipped ``ligand`` model or any ligand checkpoint, clusters them into binding modes (2 Å
symmetry-aware RMSD) and reports each mode's population with a 95 % interval, its Vina energy
and its RMSD to the input pose. ``--minimize`` first quenches every pose to its local minimum
(Vina, plus a hard core below 0.8 of the van der Waals sum), so that the poses written are valid structures
(:mod:`digmat.ligand.minimize`). PoseBusters judges the modes' representatives (``--check-all``:
every pose). ``--log-prob STEPS`` adds each pose's log-density under the model (and the input
pose's), by the probability-flow ODE (:mod:`digmat.tasks.ligand_density`). ``--reweight gfnff``
relaxes the most populated modes with GFN-FF in the fixed pocket and reports each one's harmonic
free energy and population beside the model's (:mod:`digmat.ligand.mode_energies`). Writes ``poses.sdf`` and ``modes.sdf`` (the protein's
frame), ``modes_relaxed.sdf`` (with ``--reweight``), ``modes.png`` and ``ligand.json``.
Needs the ligand extra (``pip install "digmat[ligand]"``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from digmat.cli.io import finish
from digmat.cli.options import (add_device_option, add_json_option, add_out_option, add_temperature_option, at_least,
                                check_output_dir, positive, resolve_device)


DEFAULT_GRID_POWER = 1.0
DEFAULT_REFINE = 200
DEFAULT_MINIMIZE = 500


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("protein", help="protein structure without the ligand (PDB or mmCIF)")
    parser.add_argument("ligand", help="ligand file (SDF/MOL/MOL2, with a pose) or a SMILES string with --center")
    parser.add_argument("--center", type=float, nargs=3, metavar=("X", "Y", "Z"),
                        help="site centre, Å (default: the input ligand's centroid)")
    parser.add_argument("--box", type=positive(float), default=6.0, help="Å: ligand centroids within this radius of the centre (default 6)")
    parser.add_argument("--ph", type=float, default=7.0, help="protonation pH of the ligand (default 7)")
    parser.add_argument("--model", default="ligand", help="ligand checkpoint path or shipped model name (default ligand)")
    parser.add_argument("-n", "--num-samples", type=at_least(1), default=256, help="poses to draw (default 256)")
    add_temperature_option(parser, default=300.0)
    parser.add_argument("--steps", type=at_least(1), default=200, help="reverse-SDE steps (default 200)")
    parser.add_argument("--grid-power", type=positive(float), default=DEFAULT_GRID_POWER,
                        help=f"SDE step grid t = u^p, > 1 refines more at low noise (default {DEFAULT_GRID_POWER:g})")
    parser.add_argument("--refine", type=at_least(0), default=DEFAULT_REFINE, metavar="STEPS",
                        help="Metropolis steps per pose under the Vina energy at -T after sampling; each leaves the "
                             f"Boltzmann density invariant (default {DEFAULT_REFINE}; 0: raw model samples)")
    parser.add_argument("--minimize", type=at_least(0), default=DEFAULT_MINIMIZE, metavar="STEPS",
                        help="then quench every pose to its local minimum of the Vina energy (at most STEPS descent "
                             f"iterations), as docking programs report poses (default {DEFAULT_MINIMIZE}; 0: keep the "
                             "300 K samples, whose soft Vina contacts PoseBusters often calls clashes)")
    parser.add_argument("--reweight", default=None, metavar="CALC",
                        help="relax the most populated modes with CALC (gfnff: GFN-FF in ALPB water; gfnff-vacuum) in the "
                             "fixed pocket and report their harmonic free energies and populations beside the model's")
    parser.add_argument("--reweight-modes", type=at_least(1), default=5, metavar="K",
                        help="modes relaxed by --reweight, most populated first (default 5; ~10-40 s each with GFN-FF)")
    parser.add_argument("--reweight-starts", type=at_least(1), default=2, metavar="K",
                        help="poses relaxed per mode by --reweight, lowest Vina energy first; the mode's minimum is "
                             "the lowest reached (default 2)")
    parser.add_argument("--log-prob", type=at_least(0), default=0, metavar="STEPS",
                        help="log-density of every pose (and of the input pose) under the model, by the probability-flow "
                             "ODE with STEPS Heun steps (100 is ~0.2 nats from converged; nats per Å^3 of centroid, "
                             "rad^M of torsions and unit Haar measure of orientations; default 0: off)")
    parser.add_argument("--check-all", action="store_true", help="run PoseBusters on every pose (about 0.1-1 s each)")
    parser.add_argument("--no-checks", action="store_true", help="skip PoseBusters")
    parser.add_argument("--seed", type=at_least(0), default=0)
    add_device_option(parser)
    add_out_option(parser, "ligand_out")
    add_json_option(parser)


def _ligand(spec: str, center, ph: float):
    from digmat.ligand import ligand_from_smiles, read_ligand

    path = Path(spec)
    if path.is_file():
        return read_ligand(path, ph=ph), True
    if path.suffix.lower() in (".sdf", ".mol", ".mol2"):
        raise FileNotFoundError(f"no such file: {spec}")
    if center is None:
        raise ValueError(f"{spec!r} is not a file; a SMILES ligand needs --center X Y Z (Å)")
    return ligand_from_smiles(spec, center, ph=ph), False


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from digmat.extras import require_extra

    require_extra("ligand", "rdkit", "openmm", "vina", "meeko")
    device = resolve_device(args.device)
    check_output_dir(args.out)
    if not Path(args.protein).is_file():
        raise FileNotFoundError(f"no such file: {args.protein}")
    if args.reweight is not None:
        from digmat.ligand import check_ligand_calculator

        check_ligand_calculator(args.reweight)
    mol, has_pose = _ligand(args.ligand, args.center, args.ph)
    from digmat.pretrained import load_model
    from digmat.tasks.ligand_data import build_complex
    from digmat.tasks.ligand_sampling import sample_poses

    model = load_model(args.model, device=device)
    if getattr(model, "kind", None) != "ligand":
        raise ValueError(f"--model {args.model}: a {getattr(model, 'kind', '?')} model, not a ligand model")
    if abs(args.temperature - model.config.temperature) > 1e-6:
        raise ValueError(f"this model was trained at {model.config.temperature:g} K only; got -T {args.temperature:g}")
    found = build_complex(Path(args.protein).stem, args.protein, mol, model, center=args.center, box_radius=args.box)
    reference = found.crystal if has_pose else None
    bar = None
    if not args.json:
        from tqdm import tqdm

        bar = tqdm(total=args.num_samples, desc="poses", unit="pose")
    ensemble = sample_poses(model, found.system, args.num_samples, box_radius=args.box, steps=args.steps,
                            grid_power=args.grid_power, refine_steps=args.refine, minimize_steps=args.minimize,
                            temperature=args.temperature,
                            seed=args.seed, device=device, progress=None if bar is None else (lambda done, total: bar.update(done - bar.n)))
    if bar is not None:
        bar.close()
    if args.log_prob:
        if not args.json:
            print(f"log-densities of {len(ensemble.positions)} poses ({args.log_prob} ODE steps) ...", flush=True)
        ensemble.compute_log_density(model, steps=args.log_prob, device=device)
    if args.reweight is not None:
        from digmat.ligand import ModeEnergyConfig

        if not args.json:
            print(f"relaxing up to {args.reweight_modes} modes with {args.reweight} ...", flush=True)
        ensemble.reweight(args.protein, args.reweight, temperature=args.temperature, reference=reference,
                          config=ModeEnergyConfig(max_modes=args.reweight_modes, starts_per_mode=args.reweight_starts))
    summary = {"model": str(args.model), "protein": str(args.protein), "ligand": found.system.conditioning()["smiles"],
               "center_A": [float(v) for v in found.system.center], "temperature_K": float(args.temperature),
               "pocket_residues": len(found.system.pocket.residues), "torsions": found.system.num_torsions,
               **ensemble.summary(reference)}
    if args.log_prob and reference is not None:
        from digmat.core import RigidFlowConfig
        from digmat.tasks.ligand_density import pose_log_density

        summary["input_log_p"] = float(pose_log_density(model, found.system, reference[None],
                                                        config=RigidFlowConfig(steps=args.log_prob), device=device)[0])
    if not args.no_checks:
        from digmat.ligand.checks import mols_at, posebusters_checks

        modes = ensemble.modes()
        judged = list(range(min(10, len(summary["modes"]))))
        for k, checks in zip(judged, posebusters_checks(mols_at(mol, modes.representatives[judged]), args.protein)):
            summary["modes"][k]["posebusters_pass"] = checks["all"]
            summary["modes"][k]["posebusters_failed"] = [n for n, ok in checks.items() if not ok and n != "all"]
        if args.check_all:
            passed = [c["all"] for c in posebusters_checks(mols_at(mol, ensemble.positions), args.protein)]
            summary["posebusters_pass_fraction"] = float(np.mean(passed))

    def table(summary: dict) -> None:
        print(f"{summary['ligand']} in {summary['protein']}: {summary['num_samples']} poses in {summary['seconds']:.1f} s, "
              f"{summary['num_modes']} modes, {100 * summary['in_box_fraction']:.0f} % within the {summary['box_radius_A']:g} Å box")
        weighed = "reweight" in summary
        calc = f"  {summary['reweight']['calculator'] + ' ΔG':>10}  reweighted" if weighed else ""
        print(f" mode  population   95% interval    Vina min / mean (kcal/mol)   RMSD to input (Å){calc}  PoseBusters")
        for row in summary["modes"][:10]:
            rmsd = f"{row['rmsd_to_reference']:8.2f}" if "rmsd_to_reference" in row else "       -"
            pb = {True: "pass", False: "fail: " + ",".join(row.get("posebusters_failed", []))}.get(row.get("posebusters_pass"), "-")
            extra = ""
            if weighed:
                extra = (f"  {row['free_energy']:10.2f}  {row['reweighted_population']:10.3f}" if row.get("free_energy") is not None
                         else f"  {'-':>10}  {'-':>10}")
            print(f" {row['mode']:4d}  {row['population']:9.3f}    [{row['ci95'][0]:.3f}, {row['ci95'][1]:.3f}]"
                  f"    {row['energy_min']:7.2f} / {row['energy_mean']:7.2f}        {rmsd}{extra}          {pb}")
        if len(summary["modes"]) > 10:
            print(f" ... {len(summary['modes']) - 10} more modes with population >= 0.01 in ligand.json")
        if summary.get("minimization"):
            q = summary["minimization"]
            print(f"poses quenched to their local minima in {q['seconds']:.1f} s: median move {q['moved_median_A']:.2f} Å, "
                  f"{100 * q['stopped_fraction']:.0f} % stopped within {q['iterations']} iterations")
        if summary.get("clash_free_fraction") is not None:
            print(f"{100 * summary['clash_free_fraction']:.1f} % of poses keep every heavy-atom contact with the pocket at "
                  "≥ 0.75 of the van der Waals sum (PoseBusters' clash criterion; per pose: contact_ratio in poses.sdf)")
        if summary["modes"] and "log_p_mean" in summary["modes"][0]:
            best = max(summary["modes"], key=lambda row: row["log_p_max"])
            line = (f"model log-density (nats per Å³ rad^{summary['torsions']}, unit Haar): highest {best['log_p_max']:.2f} "
                    f"in mode {best['mode']}")
            if "input_log_p" in summary:
                line += f"; input pose {summary['input_log_p']:.2f}"
            print(line + " (per pose: log_p in poses.sdf)")
        if "posebusters_pass_fraction" in summary:
            print(f"PoseBusters: {100 * summary['posebusters_pass_fraction']:.1f} % of all poses pass")
        if weighed:
            rw = summary["reweight"]
            print(f"{rw['calculator']}: modes relaxed in a fixed {rw['pocket_atoms']}-atom pocket, harmonic free energies at "
                  f"{rw['temperature_K']:g} K (kcal/mol) over {100 * rw['model_coverage']:.0f} % of the model's probability; "
                  f"{rw['calls']} calculator calls in {rw['seconds']:.0f} s")
            dropped = [row["mode"] for row in summary["modes"] if row.get("relaxation_anomalous")]
            if dropped:
                print(f"mode{'s' if len(dropped) > 1 else ''} {', '.join(map(str, dropped))}: every relaxation was an artefact "
                      "(a bond off the median by > 0.1 Å, or an impossible energy), so no minimum and no weight")
            if rw["reference"] is not None:
                ref = rw["reference"]
                where = (f"within {ref['same_minimum_rmsd']:g} Å of mode {ref['same_as']}'s minimum" if ref["same_as"]
                         else "a minimum no relaxed mode reached")
                print(f"input pose relaxed with {rw['calculator']}: ΔG {ref['free_energy']:.2f} kcal/mol against the lowest mode, "
                      f"at {where} (moved {ref['relaxation_rmsd']:.2f} Å)")
        print(f"written to {args.out}")

    files = {"poses": ("poses.sdf", lambda fh: fh.write(ensemble.sdf("poses"))),
             "modes": ("modes.sdf", lambda fh: fh.write(ensemble.sdf("modes"))),
             **({"relaxed": ("modes_relaxed.sdf", lambda fh: fh.write(ensemble.sdf("relaxed")))} if args.reweight else {}),
             "plot": ("modes.png", ensemble.plot),
             "summary": ("ligand.json", summary)}
    return finish(args, summary, files, table)
