"""``digmat interpolate A B``: a path between two adsorbate configurations through latent space.

A and B are slab + adsorbate configurations on the same slab (``FILE@INDEX`` picks a frame
of a trajectory, ASE syntax). Both are encoded with the probability-flow ODE, joined in
latent space and decoded; the path is written as ``path.extxyz`` (info: fraction, energy
with ``--calculator``) and ``path.json``.
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
