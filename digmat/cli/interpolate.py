"""``digmat interpolate A B``: a path between two adsorbate configurations through latent space.

A and B are slab + adsorbate configurations on the same slab (``FILE@INDEX`` picks a frame
of a trajectory, ASE syntax). Both are encoded with the probability-flow ODE, joined in
latent space and decoded; the path is written as ``path.extxyz`` (info: fraction, energy
with ``--calculator``) and ``path.json``.  With a peptide model (``--model peptide``), A and B
are conformations of one peptide (e.g. two MODELs of ``ensemble.pdb``: ``FILE@3``); the path
runs through the torsion latent space and every point gets its basins and its ff14SB + GBn2
energy relaxed at fixed torsions (kcal/mol, relative to A); ``path.pdb`` holds the path.
"""

from __future__ import annotations

import argparse

from digmat.cli.io import add_model_arguments, finish, load_model_from_args, read_configurations
from digmat.cli.options import add_out_option, at_least, check_calculators, check_output_dir


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("start", help="first configuration (FILE or FILE@INDEX)")
    parser.add_argument("end", help="last configuration (FILE or FILE@INDEX)")
    parser.add_argument("--adsorbate", default=None, help="adsorbate name or file (default: the tag-2 atoms, binding atom from info['binding_index'])")
    add_model_arguments(parser)
    parser.add_argument("-k", "--num-points", type=at_least(2), default=11, help="points on the path, ends included (default 11)")
    parser.add_argument("--mode", choices=("spherical", "linear"), default="spherical", help="latent interpolation (default spherical)")
    parser.add_argument("--calculator", default=None, help="single-point energies along the path with this calculator (emt, chgnet, sevenn)")
    add_out_option(parser, "interpolate_out")


def run(args: argparse.Namespace) -> int:
    from digmat.tasks.density import interpolate_adsorbates

    check_calculators(("--calculator", args.calculator))
    start = read_configurations(args.start, single=True)[0]
    end = read_configurations(args.end, single=True)[0]
    check_output_dir(args.out)
    model = load_model_from_args(args)
    if getattr(model, "kind", None) == "peptide":
        return _peptide_path(args, start, end, model)
    path = interpolate_adsorbates(start, end, model, temperature=args.temperature, adsorbate=args.adsorbate,
                                  num_points=args.num_points, mode=args.mode, calculator=args.calculator)
    summary = {"start": args.start, "end": args.end, "temperature_K": args.temperature, "mode": args.mode,
               "fractions": [a.info["fraction"] for a in path],
               "energies_eV": [a.info.get("energy") for a in path] if args.calculator else None}
    files = {"path": ("path.extxyz", path), "summary": ("path.json", summary)}

    def table(summary: dict) -> None:
        for a in path:
            energy = f"  E = {a.info['energy']:.3f} eV" if "energy" in a.info else ""
            print(f"fraction {a.info['fraction']:.2f}{energy}")
        print(f"written to {args.out}")

    return finish(args, summary, files, table)


def _peptide_path(args: argparse.Namespace, start, end, model) -> int:
    """Latent path between two conformations of one peptide, with basins and relaxed energies."""
    import numpy as np

    from digmat.core import ODEConfig, interpolate
    from digmat.protein import BASINS, assign_basins, phi_psi, write_pdb
    from digmat.protein.relax import torsion_restrained_energies
    from digmat.systems.peptide import PeptideSystem

    model.check_supported(args.temperature)
    system = PeptideSystem(start)
    dtype = next(model.parameters()).dtype
    ends = system.to_state([start, end]).to(dtype)
    result = interpolate(system.diffusion(model.config.schedule), model.score_fn(system, args.temperature),
                         ends[0], ends[1], args.num_points, ODEConfig("heun", steps=64), mode=args.mode)
    path = system.to_atoms(system.space.wrap(result.path.detach()).double())
    energies, _ = torsion_restrained_energies(path, system.torsions)
    kcal = (energies - energies[0]) * 23.060548  # eV -> kcal/mol
    labels = assign_basins(phi_psi(system.template, np.stack([a.positions for a in path])))
    for atoms, f, e, lab in zip(path, result.fractions.tolist(), kcal, labels):
        atoms.info.update(fraction=float(f), energy_kcal_mol=float(e), basins=",".join(BASINS[b] for b in np.atleast_1d(lab)))
    summary = {"start": args.start, "end": args.end, "sequence": system.sequence, "temperature_K": args.temperature,
               "mode": args.mode, "fractions": [a.info["fraction"] for a in path],
               "relaxed_energies_kcal_mol": [a.info["energy_kcal_mol"] for a in path],
               "basins": [a.info["basins"] for a in path]}
    from pathlib import Path

    Path(args.out).mkdir(parents=True, exist_ok=True)
    write_pdb(Path(args.out) / "path.pdb", path)
    files = {"path": ("path.extxyz", path), "summary": ("path.json", summary)}

    def table(summary: dict) -> None:
        for a in path:
            print(f"fraction {a.info['fraction']:.2f}  E = {a.info['energy_kcal_mol']:7.2f} kcal/mol  {a.info['basins']}")
        print(f"written to {args.out}")

    return finish(args, summary, files, table)
