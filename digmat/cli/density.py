"""``digmat density CONFIGS``: log-density of adsorbate configurations and an in-plane probability map.

CONFIGS is any ``ase.io``-readable file of slab + adsorbate configurations (adsorbate
tagged 2), e.g. the ``configurations.extxyz`` that ``digmat adsorb`` writes. With a peptide
model (``--model peptide``), CONFIGS are conformations of one peptide with PDB naming (the
``ensemble.pdb``/``ensemble.extxyz`` of ``digmat peptide``, or any PDB file): log p is the
density of their torsions (nats per rad^d, d state torsions; exact trace). Writes
``density.extxyz`` (info: log_density, log_density_stderr) and ``density.json``; with
``--map``, also ``density_map.json`` and ``density_map.png``: the first configuration's
adsorbate translated over the surface cell at its height (or ``--height``).
"""

from __future__ import annotations

import argparse

from digmat.cli.io import add_model_arguments, finish, load_model_from_args, read_configurations
from digmat.cli.options import add_out_option, at_least, check_output_dir, positive


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("configurations", help="file of slab + adsorbate configurations; FILE@INDEX selects frames (ASE syntax)")
    parser.add_argument("--adsorbate", default=None, help="adsorbate name or file (default: the tag-2 atoms, binding atom from info['binding_index'])")
    add_model_arguments(parser)
    parser.add_argument("--rtol", type=positive(float), default=1e-4, help="ODE relative and absolute tolerance (default 1e-4)")
    parser.add_argument("--probes", type=at_least(1), default=8, help="Hutchinson probes for adsorbates of more than 4 atoms (default 8)")
    parser.add_argument("--map", action="store_true", help="also map log p over an in-plane grid")
    parser.add_argument("--grid", type=at_least(2), default=16, help="map points per cell vector (default 16)")
    parser.add_argument("--height", type=positive(float), default=None, help="map height of the binding atom above the top surface atom, Å")
    add_out_option(parser, "density_out")


def run(args: argparse.Namespace) -> int:
    from digmat.tasks.density import adsorbate_log_density, density_map

    if args.rtol >= 1:
        raise ValueError(f"--rtol {args.rtol}: a relative tolerance must be < 1 (default 1e-4)")
    configs = read_configurations(args.configurations)
    check_output_dir(args.out)
    model = load_model_from_args(args)
    if getattr(model, "kind", None) == "peptide":
        return _peptide_density(args, configs, model)
    scored = adsorbate_log_density(configs, model, temperature=args.temperature, adsorbate=args.adsorbate, rtol=args.rtol, probes=args.probes)
    summary = {
        "configurations": args.configurations, "temperature_K": args.temperature, "units": "nats per Å^(3m), m adsorbate atoms",
        "log_density": [a.info["log_density"] for a in scored], "log_density_stderr": [a.info["log_density_stderr"] for a in scored],
    }
    files = {"configurations": ("density.extxyz", scored), "summary": ("density.json", summary)}
    if args.map:
        dmap = density_map(scored[0], model, temperature=args.temperature, adsorbate=args.adsorbate, grid=args.grid, height=args.height)
        files["map"] = ("density_map.json", dmap.to_dict())
        files["map_plot"] = ("density_map.png", dmap.plot)
        summary["map"] = {"grid": args.grid, "height_A": dmap.height, "max_log_density": float(dmap.log_density.max()),
                          "argmax_fractional": [float(dmap.u[i]) for i in divmod(int(dmap.log_density.argmax()), args.grid)]}

    def table(summary: dict) -> None:
        for k, a in enumerate(scored):
            print(f"{k:4d}  log p = {a.info['log_density']:10.3f} ± {a.info['log_density_stderr']:.3f}")
        print(f"written to {args.out}")

    return finish(args, summary, files, table)


def _peptide_density(args: argparse.Namespace, configs, model) -> int:
    """log q of each peptide conformation's torsion state under a peptide model."""
    import numpy as np

    from digmat.protein import BASINS, assign_basins, phi_psi
    from digmat.systems.peptide import PeptideSystem
    from digmat.tasks.peptide_sampling import PeptideEnsemble

    model.check_supported(args.temperature)
    system = PeptideSystem(configs[0])
    states = system.to_state(configs).to(next(model.parameters()).dtype)
    ensemble = PeptideEnsemble(system, args.temperature, states, 0.0, 0)
    log_q = ensemble.log_density(model, steps=128)
    basins = assign_basins(phi_psi(system.template, np.stack([a.positions for a in configs])))
    scored = []
    for atoms, value, labels in zip(configs, log_q, basins):
        out = atoms.copy()
        out.info["log_density"] = float(value)
        out.info["basins"] = ",".join(BASINS[b] for b in np.atleast_1d(labels))
        scored.append(out)
    summary = {"configurations": args.configurations, "sequence": system.sequence, "temperature_K": args.temperature,
               "units": f"nats per rad^{system.dim} ({system.dim} state torsions)",
               "torsions": system.conditioning()["torsions"], "log_density": [float(v) for v in log_q],
               "basins": [a.info["basins"] for a in scored]}
    files = {"configurations": ("density.extxyz", scored), "summary": ("density.json", summary)}

    def table(summary: dict) -> None:
        for k, a in enumerate(scored):
            print(f"{k:4d}  log p = {a.info['log_density']:10.3f}   {a.info['basins']}")
        print(f"written to {args.out}")

    return finish(args, summary, files, table)
