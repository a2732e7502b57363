"""Do a complex's mined populations depend on the fixed pocket's extent? Re-weigh its minima in growing pockets.

``weigh_reference_ligands.py --mine`` relaxes every start in one fixed pocket: the residues within
``pocket_radius`` (5 Å) of the mined modes' poses, capped with hydrogens. Cutting the protein
there moves the energy differences between modes: on 1uou a pocket cut around the starts alone
(600 atoms) put mode 2 3.1 kcal/mol below the crystal mode, a pocket around the modes' poses (674
atoms) 4.0 above (``docs/ligand.md`` §4). This recipe measures that dependence directly. It takes
the distinct minima of one mining run (``minima_<tag>.npz``): those whose harmonic free energy lies
within ``--window`` kcal/mol of the lowest, and the lowest minimum of every mode. It cuts one
pocket per radius of ``--radii`` around all the run's minima and the crystal ligand, and relaxes
those minima again in it (:func:`digmat.ligand.mine_minima`, which also recomputes their harmonic
free energies). Each radius gives the modes' populations, and every mode's lowest free energy
relative to the crystal mode's. The energy differences converge in the radius where the
populations stop moving.

Every radius has its own resumable cache (``minima_<tag>.r<radius>.cache.npz`` beside the
minima), so an interrupted run resumes by rerunning the command. The JSON (``--out``, default
stdout) holds per radius: pocket atoms and formal charge, calls, seconds, seconds per call, and per
mode the population and lowest energy and free energy (kcal/mol).

``--flexible R`` also asks whether the fixed pocket decides the ranking: the side chains of residues
within R Å of the minima are relaxed once around the crystal ligand, then each weighed mode's best
minimum is relaxed again with them free (:func:`digmat.ligand.side_chain_atoms`,
:func:`digmat.ligand.relax_ligand` with ``free``; energies only).

Example (1uou's 24-start run, ~40 min on one core)::

    python recipes/ligand_pocket_convergence.py 1uou --tag gfnff-minima24 --radii 5 6.5 8 10 --out docs/results/ligand_pocket_convergence_1uou.json
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

from digmat.files import atomic_write_bytes
from digmat.ligand import (ModeEnergyConfig, PoseSpace, check_ligand_calculator, complex_atoms, extract_pocket, ligand_atoms,
                           ligand_bonds, ligand_calculator, mine_minima, read_ligand, relax_ligand, side_chain_atoms)
from digmat.ligand.mode_energies import EV_TO_KCAL
from digmat.tasks.ligand_data import complex_files


def chosen_minima(free_energy, mode, window: float) -> np.ndarray:
    """Indices of the minima to re-weigh: free energy within ``window`` kcal/mol of the lowest
    (NaN: not weighed, out) and the lowest-energy minimum of every mode (minima are sorted by energy)."""
    g = np.asarray(free_energy, float)
    mode = np.asarray(mode)
    keep = set(np.flatnonzero(~np.isnan(g) & (g <= np.nanmin(g) + window)).tolist())
    keep |= {int(np.flatnonzero(mode == m)[0]) for m in np.unique(mode)}
    return np.array(sorted(keep))


def radius_tag(radius: float) -> str:
    """``6.5`` → ``"6.5"``, ``8.0`` → ``"8"``: the radius as it appears in cache names."""
    return f"{radius:g}"


def flexible_energies(base, pocket, mined, mode_numbers, crystal_mode: int, calculator: str, *, radius: float,
                      fmax: float, steps: int, crystal) -> tuple[list[dict], dict]:
    """Each weighed mode's best minimum relaxed again with the side chains within ``radius`` Å of any
    chosen minimum free (one flexible set for all), no Hessians.

    The side chains as cut from the crystal are far from a GFN-FF minimum (relaxing them gains ~1,000
    kcal/mol), so they are first relaxed once around the crystal ligand, and every mode's relaxation
    starts from that pocket. Returns per mode the energy (kcal/mol) relative to the crystal mode's and
    ``gain`` against its start in the pre-relaxed pocket, and the pre-relaxation's record."""
    n_pocket = base.info["pocket_atoms"]
    free = side_chain_atoms(pocket, mined.positions.reshape(-1, 3), radius)
    work = base.copy()
    work.positions[n_pocket:] = crystal
    pre, pre_info = relax_ligand(work, ligand_calculator(calculator, base.info["charge"]), fmax=fmax, steps=steps, free=free)
    prerelax = {"calls": pre_info["evaluations"], "converged": bool(pre_info["converged"]),
                "side_chain_rmsd": float(np.sqrt(((pre.positions[free] - base.positions[free]) ** 2).sum(-1).mean()))}
    base = base.copy()
    base.positions[:n_pocket] = pre.positions[:n_pocket]
    rows = []
    for j, number in enumerate(mode_numbers):
        own = np.flatnonzero((mined.mode == j) & ~np.isnan(mined.free_energy))
        if not len(own):
            continue
        best = own[np.argmin(mined.free_energy[own])]
        work = base.copy()
        work.positions[n_pocket:] = mined.positions[best]
        work.calc = ligand_calculator(calculator, base.info["charge"])
        fixed_ev = work.get_potential_energy()
        relaxed, info = relax_ligand(work, ligand_calculator(calculator, base.info["charge"]), fmax=fmax, steps=steps, free=free)
        moved = np.sqrt(((relaxed.positions[free] - base.positions[free]) ** 2).sum(-1).mean())
        rows.append({"mode": number, "energy_ev": info["energy"], "gain": (info["energy"] - fixed_ev) * EV_TO_KCAL,
                     "calls": info["evaluations"], "converged": bool(info["converged"]),
                     "side_chain_rmsd": float(moved),
                     "ligand_rmsd": float(np.sqrt(((relaxed.positions[n_pocket:] - mined.positions[best]) ** 2).sum(-1).mean()))})
    ref = next((r["energy_ev"] for r in rows if r["mode"] == crystal_mode), None)
    for r in rows:
        r["energy_minus_crystal_mode"] = None if ref is None else (r["energy_ev"] - ref) * EV_TO_KCAL
        r["flexible_atoms"] = int(len(free))
    return rows, prerelax


def weigh_in_pockets(folder: Path, tag: str, radii, calculator: str, config: ModeEnergyConfig, *, window: float,
                     temperature: float, flexible: float = 0.0, flexible_steps: int = 1000, log=print) -> dict:
    """The record of one complex: the chosen minima re-weighed in a pocket of each radius."""
    with np.load(folder / f"minima_{tag}.npz") as data:
        minima = {k: data[k] for k in data.files}
    protein, sdf = complex_files(folder.name, folder.parent)
    mol = read_ligand(sdf)
    space = PoseSpace.from_mol(mol)
    crystal = ligand_atoms(mol).positions
    pick = chosen_minima(minima["free_energy"], minima["mode"], window)
    mode_numbers = sorted({int(m) for m in minima["mode"][pick]})
    labels = np.array([mode_numbers.index(int(m)) for m in minima["mode"][pick]])
    halves = np.where(minima["halves"][pick, 0], 0, 1)  # a minimum's first half (the halves test is not the point here)
    crystal_rmsd = space.rmsd(crystal, minima["positions"][pick].astype(float))[0]
    crystal_mode = int(minima["mode"][pick][np.argmin(crystal_rmsd)])
    points = np.concatenate([minima["positions"][:, space.heavy].reshape(-1, 3), crystal[space.heavy]])
    bonds = ligand_bonds(mol)
    log(f"{folder.name}: {len(pick)} of {len(minima['energy'])} minima in modes {mode_numbers} "
        f"(crystal mode {crystal_mode}), radii {list(radii)}")
    rows = []
    for radius in radii:
        pocket = extract_pocket(protein, points, radius=radius)
        base = complex_atoms(pocket, ligand_atoms(mol))
        begin = time.perf_counter()
        mined = mine_minima(base, minima["positions"][pick].astype(float), labels, halves,
                            lambda: ligand_calculator(calculator, base.info["charge"]), temperature=temperature,
                            num_modes=len(mode_numbers), config=config, rmsd=lambda a, b: space.rmsd(a, b)[0],
                            bonds=bonds, cache=folder / f"minima_{tag}.r{radius_tag(radius)}.cache.npz",
                            log=lambda m, r=radius: log(f"r = {r:g} Å: {m}"))
        seconds = time.perf_counter() - begin
        g_mode = {}
        per_mode = []
        for j, number in enumerate(mode_numbers):
            own = mined.mode == j
            g = mined.free_energy[own]
            g_mode[number] = float(np.nanmin(g)) if own.any() and not np.isnan(g).all() else None
            per_mode.append({"mode": number, "population": float(mined.populations[j]),
                             "lowest_energy": float(mined.energy[own].min()) if own.any() else None,
                             "lowest_free_energy": g_mode[number], "distinct_minima": int(own.sum())})
        ref = g_mode.get(crystal_mode)
        for row in per_mode:
            row["free_energy_minus_crystal_mode"] = (None if ref is None or row["lowest_free_energy"] is None
                                                     else row["lowest_free_energy"] - ref)
        flex, prerelax = [], None
        if flexible > 0:
            flex, prerelax = flexible_energies(base, pocket, mined, mode_numbers, crystal_mode, calculator, radius=flexible,
                                               fmax=0.05, steps=flexible_steps, crystal=crystal)
            log(f"r = {radius:g} Å, side chains within {flexible:g} Å free: "
                + ", ".join(f"mode {r['mode']} {r['energy_minus_crystal_mode']:+.2f} kcal/mol" for r in flex
                            if r["energy_minus_crystal_mode"] is not None))
        rows.append({"radius": float(radius), "pocket_atoms": int(base.info["pocket_atoms"]), "charge": int(base.info["charge"]),
                     "flexible": flex, "prerelax": prerelax, "residues": len(pocket.residues), "calls": mined.calls, "seconds": round(seconds, 1),
                     "seconds_per_call": round(seconds / mined.calls, 4) if mined.calls and seconds > 1 else None,
                     "anomalous": int(mined.anomalous.sum()),
                     "unconverged": int((mined.start_converged == 0).sum()), "modes": per_mode})
        log(f"r = {radius:g} Å ({rows[-1]['pocket_atoms']} atoms): populations "
            + ", ".join(f"mode {r['mode']} {r['population']:.3f}" for r in per_mode))
    return {"name": folder.name, "tag": tag, "calculator": calculator, "temperature_K": temperature, "window": window,
            "flexible_radius": flexible, "flexible_steps": flexible_steps,
            "minima": [int(i) for i in pick], "crystal_mode": crystal_mode, "config": config.__dict__, "radii": rows}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("case", help="complex folder under --data (e.g. 1uou)")
    parser.add_argument("--data", type=Path, default=Path("data/ligands"), help="reference folder")
    parser.add_argument("--tag", default="gfnff-minima24", help="the mining run: minima_<tag>.npz")
    parser.add_argument("--radii", type=float, nargs="+", default=[5.0, 6.5, 8.0, 10.0], help="pocket radii (Å)")
    parser.add_argument("--window", type=float, default=6.0, help="kcal/mol: minima this close to the lowest are re-weighed")
    parser.add_argument("--calculator", default="gfnff", help="gfnff (ALPB water) or gfnff-vacuum")
    parser.add_argument("--relax-steps", type=int, default=300, help="most L-BFGS iterations per relaxation")
    parser.add_argument("--flexible", type=float, default=0.0, metavar="R",
                        help="also relax each weighed mode's best minimum with the side chains within R Å of the minima "
                             "free (energies only, fmax 0.05 eV/Å)")
    parser.add_argument("--flexible-steps", type=int, default=1000, help="most L-BFGS iterations of a --flexible relaxation")
    parser.add_argument("--no-harmonic", action="store_true", help="energies only: no Hessians (free energy = energy)")
    parser.add_argument("--temperature", type=float, default=None, help="K (default: the reference's)")
    parser.add_argument("--out", type=Path, default=None, help="JSON file (default: stdout)")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    folder = args.data / args.case
    try:
        calculator = check_ligand_calculator(args.calculator)
        if not (folder / f"minima_{args.tag}.npz").is_file():
            raise ValueError(f"no mined minima at {folder / f'minima_{args.tag}.npz'} (run weigh_reference_ligands.py --mine)")
        if not all(r > 0 for r in args.radii) or not args.window >= 0 or not args.flexible >= 0:
            raise ValueError("--radii must be > 0 Å, --window >= 0 kcal/mol and --flexible >= 0 Å")
        temperature = args.temperature or json.loads((folder / "summary.json").read_text())["temperature_K"]
        config = ModeEnergyConfig(harmonic_window=args.window + 4.0, steps=args.relax_steps, harmonic=not args.no_harmonic)
    except (ValueError, ImportError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    record = weigh_in_pockets(folder, args.tag, sorted(args.radii), calculator, config, window=args.window,
                              temperature=temperature, flexible=args.flexible, flexible_steps=args.flexible_steps, log=lambda m: print(m, file=sys.stderr, flush=True))
    record["machine"] = {"python": platform.python_version(), "torch": torch.__version__, "cpu": platform.processor(),
                         "threads": args.threads}
    text = json.dumps(record, indent=1)
    if args.out is None:
        print(text)
    else:
        atomic_write_bytes(args.out, lambda h: h.write(text.encode()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
