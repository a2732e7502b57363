"""Reference ensembles of ligands in fixed pockets: parallel tempering under Vina's objective.

For each complex (a PoseBusters example by name, or ``--protein``/``--ligand`` files), the
ligand's poses (centroid within ``--box-radius`` Å of the crystal ligand's centroid, any
orientation, any torsions; bonds, angles and rings of the input geometry) are sampled by
parallel-tempering Monte Carlo (:func:`digmat.ligand.temper_poses`) at ``--temperature`` under
E = Vina inter + intra (kcal/mol; Vina-style maps, :class:`digmat.ligand.energy.VinaPoseEnergy`),
then importance-reweighted to the direct (map-free) Vina energy.  Binding modes are clusters
of 2 Å symmetry-aware RMSD; their populations carry 95 % intervals over the independent
chains, each mode's representative (population ≥ 0.01, the ``--judge`` largest) is judged by
PoseBusters' checks in the protein, and the convergence check is that the even- and odd-numbered chains agree on every
mode's population within ``--tolerance`` (0.1).

Written per complex: ``OUT/<name>/samples.npz`` (every recorded pose: centroid, rotation,
torsions, both energies, weight, chain), ``modes.sdf`` (gzipped above 2 MB; each mode's representative, with its
population) and ``summary.json``.  Finished complexes are skipped, so an interrupted queue
resumes by rerunning the command.

Examples::

    python recipes/reference_ligands.py 1uou 1s3v 1of6 1ia1 --out data/ligands
    python recipes/reference_ligands.py 1a28 5dt0 --complexes data/complexes --out data/ligands
    python recipes/reference_ligands.py --protein prot.pdb --ligand lig.sdf --name mine --out runs/ligands

Cases that are not PoseBusters examples are folders of ``--complexes`` holding ``protein.pdb`` and
``ligand.sdf`` (``recipes/fetch_ligand_complexes.py`` writes them); ``summary.json`` names their
files relative to itself, so a committed reference travels with the repository.
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

from digmat.files import atomic_write_bytes
from digmat.ligand import extract_pocket, ligand_atoms, read_ligand
from digmat.ligand.checks import POSEBUSTERS_EXAMPLES, mols_at, posebusters_checks, posebusters_example
from digmat.ligand.energy import VinaPoseEnergy, pocket_radius_for_maps
from digmat.ligand.modes import cluster_modes
from digmat.ligand.pose import PoseSpace
from digmat.ligand.tempering import KB_KCAL, TemperingConfig, temper_poses

MAX_PLAIN_SDF = 2_000_000
"""Bytes: a longer modes.sdf is written as modes.sdf.gz."""


def run_case(protein, sdf, config: TemperingConfig, *, spacing: float, seed: int, tolerance: float,
             judge: int = 10, log=print) -> tuple[dict, dict, bytes]:
    """Sample one complex; returns (summary, arrays, modes SDF bytes)."""
    mol = read_ligand(sdf)
    lig = ligand_atoms(mol)
    space = PoseSpace.from_mol(mol)
    center = lig.positions[lig.numbers > 1].mean(axis=0)
    extent = float(np.linalg.norm(space.template[space.heavy], axis=1).max())
    half = config.box_radius + extent + 0.5
    start = time.perf_counter()
    pocket = extract_pocket(protein, center, radius=pocket_radius_for_maps(half))
    energy = VinaPoseEnergy(pocket, mol, center, half_width=half, spacing=spacing)
    setup_s = time.perf_counter() - start
    log(f"  pocket {len(pocket.atoms)} atoms, maps {energy.maps.shape} in {setup_s:.0f} s; sampling ...")
    samples = temper_poses(space, energy, center, config, seed=seed,
                           progress=lambda f: log(f"  {100 * f:.0f} %") if round(100 * f) % 10 == 0 else None)
    x = samples.positions(space).reshape(-1, space.num_atoms, 3)
    e_grid = samples.energy.reshape(-1)
    with torch.no_grad():
        direct = torch.cat([sum(energy.score(chunk)[k] for k in ("inter", "intra")) for chunk in x.split(512)])
    beta = 1.0 / (KB_KCAL * config.temperature)
    log_w = -beta * (direct - e_grid)
    w = torch.exp(log_w - log_w.max())
    w = (w / w.sum()).numpy()
    chains = np.tile(np.arange(config.chains), len(samples.energy))
    modes = cluster_modes(space, x.numpy(), direct.numpy(), chains=chains, weights=w, cutoff=2.0)
    crystal = lig.positions
    with torch.no_grad():
        crystal_direct = energy.score(torch.as_tensor(crystal)[None])
    rmsd_best = float(space.rmsd(x[int(torch.argmin(direct))].numpy(), crystal)[0, 0])
    table = modes.table(space, crystal)
    judged = [k for k in range(len(table)) if table[k]["population"] >= 0.01][:judge]
    for k, checks in zip(judged, posebusters_checks(mols_at(mol, modes.representatives[judged]), protein)):
        table[k]["posebusters_pass"] = checks["all"]
        table[k]["posebusters_failed"] = [name for name, ok in checks.items() if not ok and name != "all"]
    summary = {
        "ligand": lig.info["smiles"], "ligand_charge": lig.info["charge"], "pocket_atoms": len(pocket.atoms),
        "pocket_charge": pocket.charge, "hetero_groups": list(pocket.hetero), "torsions": space.num_torsions,
        "temperature_K": config.temperature, "box_radius_A": config.box_radius, "map_spacing_A": spacing,
        "config": {k: (list(v) if isinstance(v, tuple) else v) for k, v in config.__dict__.items()},
        "samples": int(len(x)), "energy_evaluations": samples.evaluations,
        "acceptance_lowest_T": {k: float(v[0]) for k, v in samples.acceptance.items()},
        "swap_rates": samples.swap_rate.tolist(),
        "reweighting_ess_fraction": float(1.0 / np.sum(w**2) / len(w)),
        "crystal_energy_kcal_mol": float(crystal_direct["inter"][0] + crystal_direct["intra"][0]),
        "crystal_vina_score": float(crystal_direct["total"][0]),
        "lowest_energy_sampled": float(direct.min()), "rmsd_lowest_to_crystal_A": rmsd_best,
        "modes": table,
        "max_half_difference": modes.max_half_difference, "tolerance": tolerance,
        "converged": bool(modes.max_half_difference <= tolerance),
        "setup_s": setup_s, "sampling_s": samples.wall_s,
    }
    arrays = {"t": samples.t.numpy().astype(np.float32), "rotation": samples.rotation.numpy().astype(np.float32),
              "tau": samples.tau.numpy().astype(np.float32), "energy_maps": samples.energy.numpy().astype(np.float32),
              "energy_direct": direct.numpy().reshape(samples.energy.shape).astype(np.float32),
              "weights": w.reshape(samples.energy.shape).astype(np.float32)}
    return summary, arrays, _modes_sdf(mol, modes)


def case_files(name: str, complexes: Path) -> tuple[Path, Path]:
    """(protein, ligand SDF) of a PoseBusters example or of the folder ``complexes/name``."""
    if name in POSEBUSTERS_EXAMPLES:
        return posebusters_example(name)
    protein, sdf = complexes / name / "protein.pdb", complexes / name / "ligand.sdf"
    if not (protein.is_file() and sdf.is_file()):
        raise ValueError(f"{name!r} is not a PoseBusters example and {complexes / name} has no protein.pdb + ligand.sdf")
    return protein, sdf


def _file_names(name: str, protein, sdf, folder: Path) -> dict:
    """The summary's file entries: PoseBusters examples by their wheel's path, others relative to ``folder``."""
    if name in POSEBUSTERS_EXAMPLES:
        return {"protein": str(protein), "ligand_file": str(sdf)}
    return {"protein": os.path.relpath(protein, folder), "ligand_file": os.path.relpath(sdf, folder)}


def _modes_sdf(mol, modes) -> bytes:
    from rdkit import Chem

    buffer = io.StringIO()
    writer = Chem.SDWriter(buffer)
    names = [f"mode {k + 1}" for k in range(len(modes.populations))]
    for k, m in enumerate(mols_at(mol, modes.representatives, names=names)):
        m.SetProp("population", f"{modes.populations[k]:.4f}")
        m.SetProp("energy_min_kcal_mol", f"{modes.energy_min[k]:.3f}")
        writer.write(m)
    writer.close()
    return buffer.getvalue().encode()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("cases", nargs="*", help="PoseBusters examples (1ia1 1of6 1s3v 1uou) or folders of --complexes")
    parser.add_argument("--complexes", type=Path, default=Path("data/complexes"),
                        help="folder of NAME/protein.pdb + NAME/ligand.sdf (default data/complexes)")
    parser.add_argument("--protein", type=Path, help="protein PDB/mmCIF (with --ligand and --name)")
    parser.add_argument("--ligand", type=Path, help="ligand SDF/MOL2 with its reference pose")
    parser.add_argument("--name", help="folder name for --protein/--ligand")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--temperature", type=float, default=300.0, help="K (default 300)")
    parser.add_argument("--max-temperature", type=float, default=1500.0, help="top of the ladder, K")
    parser.add_argument("--replicas", type=int, default=8)
    parser.add_argument("--chains", type=int, default=16, help="independent chains (even/odd halves)")
    parser.add_argument("--steps", type=int, default=20000)
    parser.add_argument("--burn-in", type=int, default=4000)
    parser.add_argument("--record-every", type=int, default=20)
    parser.add_argument("--box-radius", type=float, default=6.0, help="Å around the reference centroid")
    parser.add_argument("--spacing", type=float, default=0.375, help="map spacing, Å")
    parser.add_argument("--tolerance", type=float, default=0.1, help="halves' agreement per mode population")
    parser.add_argument("--judge", type=int, default=10, help="modes checked by PoseBusters (~1 s each)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    try:
        jobs = [(name, *case_files(name, args.complexes)) for name in args.cases]
        if args.protein or args.ligand:
            if not (args.protein and args.ligand and args.name):
                raise ValueError("--protein, --ligand and --name go together")
            jobs.append((args.name, args.protein, args.ligand))
        if not jobs:
            raise ValueError("name PoseBusters examples or give --protein/--ligand/--name")
        config = TemperingConfig(temperature=args.temperature, max_temperature=args.max_temperature,
                                 replicas=args.replicas, chains=args.chains, steps=args.steps,
                                 burn_in=args.burn_in, record_every=args.record_every, box_radius=args.box_radius)
    except (ValueError, ImportError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    for name, protein, sdf in jobs:
        folder = args.out / name
        if (folder / "summary.json").exists():
            print(f"{name}: done already")
            continue
        folder.mkdir(parents=True, exist_ok=True)
        print(f"{name}: sampling", flush=True)
        try:
            summary, arrays, sdf_bytes = run_case(protein, sdf, config, spacing=args.spacing, seed=args.seed,
                                                  tolerance=args.tolerance, judge=args.judge,
                                                  log=lambda m: print(m, flush=True))
        except ValueError as err:
            print(f"error: {name}: {err}", file=sys.stderr)
            return 2
        summary = {"name": name, **_file_names(name, protein, sdf, folder), **summary}
        atomic_write_bytes(folder / "samples.npz", lambda h: np.savez_compressed(h, **arrays))
        if len(sdf_bytes) > MAX_PLAIN_SDF:  # thousands of modes on a flat landscape: gzip it (~6x smaller)
            atomic_write_bytes(folder / "modes.sdf.gz", lambda h: h.write(gzip.compress(sdf_bytes, mtime=0)))
        else:
            atomic_write_bytes(folder / "modes.sdf", lambda h: h.write(sdf_bytes))
        atomic_write_bytes(folder / "summary.json", lambda h: h.write(json.dumps(summary, indent=1).encode()))
        top = summary["modes"][0]
        print(json.dumps({"name": name, "modes": len(summary["modes"]), "top_population": top["population"],
                          "top_rmsd_to_crystal": top["rmsd_to_reference"], "converged": summary["converged"]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
