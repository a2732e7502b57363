"""Binding-mode populations of the ligand reference ensembles weighed by a physics calculator (GFN-FF).

The references of ``recipes/reference_ligands.py`` sample Vina's objective at 300 K by parallel
tempering: they visit every mode, but Vina's landscape is flat to a few kT over hundreds of
poses, so their populations are spread (the crystal mode of 1s3v holds 0.026 although it is
the lowest Vina energy sampled). This recipe keeps the modes' shapes from that sampling and
takes how much each mode weighs from a calculator: the lowest-Vina-energy poses of the
``--by-population`` most populated and the ``--by-energy`` lowest-energy modes are relaxed with
GFN-FF (ALPB water) in one fixed pocket, each distinct minimum gets its harmonic free energy
(:func:`digmat.ligand.weigh_modes`; Hessians only within ``--window`` kcal/mol of the lowest
minimum), and every sample is reweighted so that its mode holds its minimum's population
(:func:`digmat.ligand.reweight_samples`; samples of modes not relaxed get weight 0). The
crystal pose is relaxed and weighed beside the modes (reported, not used).

Written per complex, beside ``samples.npz``: ``weights_<calculator>.npz`` (``weights``, the same
(records, chains) shape as the samples') and ``weights_<calculator>.json`` (every relaxed mode,
the crystal's record, the new populations of every mode of ``modes.sdf`` in its order, the
largest difference between the even- and odd-chain halves, calls, time). ``train_ligand.py
--weights <calculator>`` trains on them and ``bench_ligand.py --reference-weights <calculator>``
scores against them.
Finished complexes are skipped, so an interrupted queue resumes by rerunning the command.

Example (one complex ~15–30 min on one core)::

    python recipes/weigh_reference_ligands.py 1s3v 1ia1 1of6 1uou --data data/ligands

``--mine STARTS`` weighs by mining minima instead (:func:`digmat.ligand.mine_minima`): STARTS
poses per mode, half from the even and half from the odd chains (each half's lowest Vina energy
first, then drawn by weight), every distinct minimum counted in its mode's population, and the
two halves' populations compared (the convergence figure). Relaxations are cached in
``minima_<tag>.cache.npz``, so an interrupted run resumes; ``minima_<tag>.npz``
keeps the distinct minima (coordinates, energies, modes). ``--tag`` names the output
(``weights_<tag>``)::

    python recipes/weigh_reference_ligands.py 1uou --mine 12 --by-population 10 --by-energy 10 --window 8 --tag gfnff-minima
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from digmat.files import atomic_write_bytes
from digmat.ligand import (ModeEnergyConfig, PoseSpace, check_ligand_calculator, cluster_modes, complex_atoms,
                           extract_pocket, ligand_atoms, ligand_bonds, ligand_calculator, mine_minima, read_ligand, relax_ligand,
                           reweight_samples, weigh_clustered_modes)
from digmat.ligand.mode_energies import EV_TO_KCAL, spread_populations
from digmat.tasks.ligand_data import complex_files


def selected_modes(populations, energy_min, by_population: int, by_energy: int) -> list[int]:
    """Mode indices to relax: the ``by_population`` most populated and the ``by_energy`` lowest in
    energy, most populated first, each once."""
    lowest = np.argsort(np.asarray(energy_min), kind="stable")[:by_energy]
    chosen = set(range(min(by_population, len(populations)))) | {int(k) for k in lowest}
    return sorted(chosen, key=lambda k: (-populations[k], k))


def load_reference(folder: Path):
    """(summary, protein path, mol, space, poses (S, N, 3) Å, Vina energies (S,), weights (S,), chains (S,),
    samples' shape, modes) of one reference folder."""
    summary = json.loads((folder / "summary.json").read_text())
    protein, sdf = complex_files(folder.name, folder.parent)
    mol = read_ligand(sdf)
    space = PoseSpace.from_mol(mol)
    data = np.load(folder / "samples.npz")
    shape = data["weights"].shape
    with torch.no_grad():
        x = space.positions(torch.as_tensor(data["t"].reshape(-1, 3), dtype=torch.float64),
                            torch.as_tensor(data["rotation"].reshape(-1, 3, 3), dtype=torch.float64),
                            torch.as_tensor(data["tau"].reshape(int(np.prod(shape)), -1), dtype=torch.float64)).numpy()
    energy = data["energy_direct"].reshape(-1).astype(float)
    w = data["weights"].reshape(-1).astype(float)
    chains = np.tile(np.arange(shape[1]), shape[0])
    modes = cluster_modes(space, x, energy, chains=chains, weights=w, cutoff=2.0)
    return summary, protein, mol, space, x, energy, w, chains, shape, modes


def weigh_case(folder: Path, calculator: str, config: ModeEnergyConfig, *, by_population: int, by_energy: int,
               log=print) -> tuple[dict, np.ndarray]:
    """Weigh one complex's reference; returns (record, new weights shaped like the samples')."""
    summary, protein, mol, space, x, energy, w, chains, shape, modes = load_reference(folder)
    crystal = ligand_atoms(mol).positions
    chosen = selected_modes(modes.populations, modes.energy_min, by_population, by_energy)
    log(f"{folder.name}: {len(modes.populations)} modes, relaxing {len(chosen)}")
    weighed = weigh_clustered_modes(protein, mol, space, x, energy, modes.labels, chosen, modes.populations[chosen],
                                    calculator, temperature=summary["temperature_K"], config=config, reference=crystal)
    labels = np.full(len(w), -1)
    for j, k in enumerate(chosen):
        labels[modes.labels == k] = j
    new = reweight_samples(labels, w, weighed)
    pops = np.bincount(modes.labels, weights=new, minlength=len(modes.populations))
    halves = np.array([np.bincount(modes.labels[chains % 2 == h], weights=new[chains % 2 == h],
                                   minlength=len(pops)) / max(new[chains % 2 == h].sum(), 1e-300) for h in (0, 1)])
    rmsd = modes.rmsd_to(space, crystal)
    top = int(np.argmax(pops))
    rows = []
    for j, m in enumerate(weighed.modes):
        k = chosen[j]
        rows.append({"mode": k + 1, "vina_population": float(modes.populations[k]), "vina_energy_min": float(modes.energy_min[k]),
                     "rmsd_to_crystal": float(rmsd[k]), "relaxed_rmsd_to_crystal": float(space.rmsd(m.positions, crystal)[0, 0]),
                     "energy": m.energy, "free_energy": m.free_energy, "population": float(pops[k]),
                     "relaxation_rmsd": m.relaxation_rmsd, "converged": m.converged, "harmonic": m.harmonic,
                     "n_imaginary": m.n_imaginary, "same_as": None if m.same_as is None else chosen[m.same_as - 1] + 1,
                     "anomalous": m.anomalous})
    record = {"name": folder.name, "calculator": calculator, "temperature_K": summary["temperature_K"],
              "config": config.__dict__, "by_population": by_population, "by_energy": by_energy,
              "modes_total": int(len(pops)), "vina_coverage": weighed.model_coverage, "pocket_atoms": weighed.pocket_atoms,
              "calls": weighed.calls, "seconds": round(weighed.seconds, 1), "crystal": weighed.reference,
              "top_mode": top + 1, "top_population": float(pops[top]), "top_rmsd_to_crystal": float(rmsd[top]),
              "population_within_2A_of_crystal": float(pops[rmsd <= 2.0].sum()),
              "max_half_difference": float(np.abs(halves[0] - halves[1]).max()),
              "effective_samples": float(1.0 / np.sum(new**2)), "relaxed_modes": rows,
              "mode_populations": [float(p) for p in pops]}
    return record, new.reshape(shape).astype(np.float32)


def mining_starts(modes, energy, w, chains, chosen, per_mode: int, seed: int):
    """Start indices, their mode (index into ``chosen``) and half: per mode and half (chain parity),
    the lowest-energy member first, then members drawn by weight without replacement."""
    rng = np.random.default_rng(seed)
    picks, labels, halves = [], [], []
    for j, k in enumerate(chosen):
        for h in (0, 1):
            members = np.flatnonzero((modes.labels == k) & (chains % 2 == h))
            if not len(members):
                continue
            take = [int(members[np.argmin(energy[members])])]
            rest = members[members != take[0]]
            want = min(per_mode // 2 - 1, len(rest))
            if want > 0:
                p = w[rest] / w[rest].sum() if w[rest].sum() > 0 else None
                take += [int(i) for i in rng.choice(rest, size=want, replace=False, p=p)]
            picks += take
            labels += [j] * len(take)
            halves += [h] * len(take)
    return np.array(picks), np.array(labels), np.array(halves)


def mine_case(folder: Path, calculator: str, config: ModeEnergyConfig, *, by_population: int, by_energy: int,
              starts: int, seed: int, tag: str, log=print) -> tuple[dict, np.ndarray, dict]:
    """Weigh one complex's reference by mining minima; returns (record, new weights, minima arrays)."""
    summary, protein, mol, space, x, energy, w, chains, shape, modes = load_reference(folder)
    crystal = ligand_atoms(mol).positions
    chosen = selected_modes(modes.populations, modes.energy_min, by_population, by_energy)
    picks, labels, halves = mining_starts(modes, energy, w, chains, chosen, starts, seed)
    log(f"{folder.name}: {len(modes.populations)} modes, mining {len(chosen)} with {len(picks)} starts")
    # the pocket covers the mined modes' poses (up to 200 per mode), not just the starts, so that a
    # longer search (more starts) relaxes in the same pocket and reuses the cached relaxations
    spread = [members[:: max(1, len(members) // 200)] for k in chosen for members in [np.flatnonzero(modes.labels == k)]]
    pocket = extract_pocket(protein, np.concatenate([x[np.concatenate(spread)][:, space.heavy].reshape(-1, 3),
                                                     crystal[space.heavy]]), radius=config.pocket_radius)
    base = complex_atoms(pocket, ligand_atoms(mol))
    fresh = lambda: ligand_calculator(calculator, base.info["charge"])  # noqa: E731
    T = summary["temperature_K"]
    mined = mine_minima(base, x[picks], labels, halves, fresh, temperature=T, num_modes=len(chosen), config=config,
                        rmsd=lambda a, b: space.rmsd(a, b)[0], bonds=ligand_bonds(mol), cache=folder / f"minima_{tag}.cache.npz", log=log)
    work = base.copy()
    work.positions[base.info["pocket_atoms"]:] = crystal
    relaxed, info = relax_ligand(work, fresh(), fmax=config.fmax, steps=config.steps)
    xc = relaxed.positions[base.info["pocket_atoms"]:]
    d = space.rmsd(xc, mined.positions)[0]
    near = int(np.argmin(d))
    pops = np.zeros(len(modes.populations))
    pops[chosen] = mined.populations
    new = spread_populations(modes.labels, w, dict(zip(chosen, mined.populations)))
    rmsd = modes.rmsd_to(space, crystal)
    top = int(np.argmax(pops))
    rows = []
    for j, k in enumerate(chosen):
        mine = mined.mode == j
        rows.append({"mode": k + 1, "vina_population": float(modes.populations[k]), "vina_energy_min": float(modes.energy_min[k]),
                     "rmsd_to_crystal": float(rmsd[k]), "population": float(mined.populations[j]),
                     "half_populations": [float(mined.half_populations[h, j]) for h in (0, 1)],
                     "starts": int((labels == j).sum()), "distinct_minima": int(mine.sum()),
                     "lowest_energy": float(mined.energy[mine].min()) if mine.any() else None,
                     "lowest_free_energy": float(np.nanmin(mined.free_energy[mine])) if mine.any() and
                     not np.isnan(mined.free_energy[mine]).all() else None})
    record = {"name": folder.name, "calculator": calculator, "method": "mining minima", "temperature_K": T,
              "config": config.__dict__, "by_population": by_population, "by_energy": by_energy,
              "starts_per_mode": starts, "seed": seed, "modes_total": int(len(pops)),
              "vina_coverage": float(modes.populations[chosen].sum()), "pocket_atoms": int(base.info["pocket_atoms"]),
              "calls": mined.calls + info["evaluations"], "distinct_minima": int(len(mined.energy)),
              "anomalous_starts": int(mined.anomalous.sum()),
              "unconverged_starts": int((mined.start_converged == 0).sum()),
              "crystal": {"energy": float((info["energy"] - mined.lowest_energy_ev) * EV_TO_KCAL),
                          "relaxation_rmsd": float(space.rmsd(xc, crystal)[0, 0]), "converged": bool(info["converged"]),
                          "nearest_minimum_rmsd": float(d[near]), "nearest_minimum_mode": chosen[int(mined.mode[near])] + 1,
                          "nearest_minimum_energy": float(mined.energy[near])},
              "top_mode": top + 1, "top_population": float(pops[top]), "top_rmsd_to_crystal": float(rmsd[top]),
              "population_within_2A_of_crystal": float(pops[rmsd <= 2.0].sum()),
              "max_half_difference": mined.max_half_difference,
              "effective_samples": float(1.0 / np.sum(new**2)), "relaxed_modes": rows,
              "minima": [dict(row, mode=chosen[row["mode"]] + 1) for row in mined.as_dict()["minima"]],
              "mode_populations": [float(p) for p in pops]}
    arrays = {"positions": mined.positions.astype(np.float32), "energy": mined.energy, "free_energy": mined.free_energy,
              "mode": np.array(chosen)[mined.mode] + 1, "halves": mined.halves, "starts": mined.starts}
    return record, new.reshape(shape).astype(np.float32), arrays


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("cases", nargs="+", help="complex folders under --data (e.g. 1s3v)")
    parser.add_argument("--data", type=Path, default=Path("data/ligands"), help="reference folder")
    parser.add_argument("--calculator", default="gfnff", help="gfnff (ALPB water) or gfnff-vacuum")
    parser.add_argument("--by-population", type=int, default=8, help="most populated modes relaxed")
    parser.add_argument("--by-energy", type=int, default=8, help="lowest-energy modes relaxed")
    parser.add_argument("--starts", type=int, default=2, help="poses relaxed per mode (its lowest in Vina energy)")
    parser.add_argument("--relax-steps", type=int, default=300, help="most L-BFGS iterations per relaxation")
    parser.add_argument("--window", type=float, default=10.0, help="kcal/mol: Hessians only this close to the lowest minimum")
    parser.add_argument("--mine", type=int, default=0, metavar="STARTS",
                        help="weigh by mining minima with STARTS poses per mode (even, >= 2; module docstring)")
    parser.add_argument("--seed", type=int, default=0, help="--mine: how the starts are drawn")
    parser.add_argument("--tag", default=None, help="output name weights_<tag> (default: the calculator's)")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    try:
        calculator = check_ligand_calculator(args.calculator)
        config = ModeEnergyConfig(max_modes=args.by_population + args.by_energy, starts_per_mode=args.starts,
                                  min_population=0.0, harmonic_window=args.window,
                                  steps=args.relax_steps)
        if args.by_population < 0 or args.by_energy < 0 or args.by_population + args.by_energy < 1:
            raise ValueError("--by-population and --by-energy must be >= 0, at least one of them > 0")
        if args.mine and (args.mine < 2 or args.mine % 2):
            raise ValueError(f"--mine needs an even number of starts >= 2 (half per half of the chains), got {args.mine}")
        tag = args.tag or calculator
        if not tag.replace("-", "").replace("_", "").isalnum():
            raise ValueError(f"--tag must be letters, digits, - and _, got {tag!r}")
        for name in args.cases:
            if not (args.data / name / "samples.npz").is_file():
                raise ValueError(f"no reference samples at {args.data / name / 'samples.npz'} (run reference_ligands.py)")
    except (ValueError, ImportError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    for name in args.cases:
        folder = args.data / name
        out = folder / f"weights_{tag}.json"
        if out.exists():
            print(f"{name}: done already")
            continue
        if args.mine:
            begin = time.perf_counter()
            record, weights, minima = mine_case(folder, calculator, config, by_population=args.by_population,
                                                by_energy=args.by_energy, starts=args.mine, seed=args.seed, tag=tag,
                                                log=lambda m: print(m, flush=True))
            record["seconds"] = round(time.perf_counter() - begin, 1)
            atomic_write_bytes(folder / f"minima_{tag}.npz", lambda h: np.savez_compressed(h, **minima))
        else:
            record, weights = weigh_case(folder, calculator, config, by_population=args.by_population,
                                         by_energy=args.by_energy, log=lambda m: print(m, flush=True))
        atomic_write_bytes(folder / f"weights_{tag}.npz", lambda h: np.savez_compressed(h, weights=weights))
        atomic_write_bytes(out, lambda h: h.write(json.dumps(record, indent=1).encode()))
        print(json.dumps({k: record[k] for k in ("name", "top_mode", "top_population", "top_rmsd_to_crystal",
                                                 "population_within_2A_of_crystal", "max_half_difference", "calls",
                                                 "seconds")}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
