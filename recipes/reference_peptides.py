"""Reference ensembles of capped peptides: independent well-tempered metadynamics runs, compared in halves.

For every sequence, two or more runs (``--seeds``, default 0 and 1; different starting conformers) of
:func:`digmat.protein.run_metadynamics` (ff14SB + GBn2, 300 K, bias on a dipeptide's φ/ψ
and χ1, on every residue's φ for two or three residues) are written to ``OUT/<SEQ>/run<seed>.npz``
(torsions every ps with final-bias weights, a frame every 10 ps, the free-energy grid; ~0.5 MB).
Each finished run is one file: rerun the same command after a kill and only unfinished runs are redone.  ``OUT/<SEQ>/summary.json``
gives each run's basin populations (frame reweighting and grid) and free energies, and the
convergence check: the two independent halves of the runs (even- and odd-numbered seeds, each
the mean of its runs' populations) agree on every basin's ΔF (relative to β/C7eq) within
``--tolerance`` kcal/mol.  A peptide that fails it gets more runs: ``--seeds 0 1 2 3``.

Examples::

    python recipes/reference_peptides.py A --out data/peptides --ns 10 --threads 1
    python recipes/reference_peptides.py V --out data/peptides --ns 10 --seeds 0 1 2 3
    python recipes/reference_peptides.py A G V --out data/peptides --ns 10 --summary-only
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from digmat.files import atomic_write_bytes
from digmat.protein import (
    BASINS,
    MAX_REFERENCE_RESIDUES,
    KB_KCAL,
    MetadynamicsConfig,
    MetadynamicsRun,
    assign_basins,
    build_peptide,
    check_sequence,
    run_metadynamics,
)


def _finite(value):
    """JSON-safe copy: non-finite floats (an empty basin's free energy) become None."""
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def summarize(runs: list[MetadynamicsRun], tolerance: float) -> dict:
    """Per-run basin populations/free energies of each residue and the between-run agreement."""
    with np.errstate(divide="ignore", invalid="ignore"):  # an empty basin has F = inf
        return _summarize(runs, tolerance)


def _summarize(runs: list[MetadynamicsRun], tolerance: float) -> dict:
    out = {"runs": [], "basins": list(BASINS)}
    kt = KB_KCAL * runs[0].temperature
    per_run_p = []
    for run in runs:
        w = run.weights()
        residues = []
        for r in range(run.phi_psi.shape[1]):
            p = np.bincount(assign_basins(run.phi_psi[:, r]), weights=w, minlength=len(BASINS))
            residues.append({"populations": p.tolist(),
                             "dF_kcal_mol": (-kt * np.log(p / p[0])).tolist()})
        row = {"seed": run.meta["seed"], "ns": run.meta["config"]["nanoseconds"],
               "wall_s": run.meta["wall_s"], "ns_per_day": run.meta["ns_per_day"],
               "effective_samples": float(1.0 / np.sum(w**2)), "residues": residues}
        if run.phi_psi.shape[1] == 1:  # one residue: φ, ψ (and χ1) grid
            g = run.grid_populations()
            row["grid_populations"] = g.tolist()
            row["grid_dF_kcal_mol"] = (-kt * np.log(g / g[0])).tolist()
        out["runs"].append(row)
        per_run_p.append(np.array([res["populations"] for res in residues]))
    if len(runs) >= 2:
        halves = [np.mean(per_run_p[0::2], axis=0), np.mean(per_run_p[1::2], axis=0)]
        df = [-kt * np.log(p / p[:, :1]) for p in halves]
        out["half_seeds"] = [[r["seed"] for r in out["runs"][0::2]], [r["seed"] for r in out["runs"][1::2]]]
        out["half_populations"] = [p.tolist() for p in halves]
        diff = np.abs(df[0] - df[1])
        out["max_abs_dF_difference_kcal_mol"] = float(np.max(diff))  # nan when a basin is empty
        out["dF_difference_kcal_mol"] = diff.tolist()
        out["tolerance_kcal_mol"] = tolerance
        out["converged"] = bool(np.max(diff) <= tolerance)
    return _finite(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("sequences", nargs="+", help="one-letter sequences, e.g. A GA AAA")
    parser.add_argument("--out", type=Path, required=True, help="output folder (one subfolder per sequence)")
    parser.add_argument("--ns", type=float, default=10.0, help="ns per run (default 10)")
    parser.add_argument("--temperature", type=float, default=300.0, help="K (default 300)")
    parser.add_argument("--threads", type=int, default=1, help="OpenMM CPU threads per run")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1],
                        help="run seeds (default 0 1); halves are even- and odd-numbered ones")
    parser.add_argument("--tolerance", type=float, default=0.3, help="kcal/mol agreement of the two halves")
    parser.add_argument("--summary-only", action="store_true", help="summarise finished runs, run nothing")
    args = parser.parse_args(argv)
    try:
        sequences = [check_sequence(s) for s in args.sequences]
        for seq in sequences:
            if len(seq) > MAX_REFERENCE_RESIDUES:
                raise ValueError(f"{seq}: metadynamics references take at most {MAX_REFERENCE_RESIDUES} residues")
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    config = MetadynamicsConfig(nanoseconds=args.ns, temperature=args.temperature)
    for seq in sequences:
        folder = args.out / seq
        folder.mkdir(parents=True, exist_ok=True)
        runs = []
        for seed in args.seeds:
            path = folder / f"run{seed}.npz"
            if not path.exists() and not args.summary_only:
                start = time.time()
                atoms = build_peptide(seq, seed=seed)
                print(f"{seq} seed {seed}: {args.ns} ns ...", flush=True)
                run = run_metadynamics(atoms, config, seed=seed, threads=args.threads,
                                       progress=lambda f: print(f"  {seq}/{seed} {100 * f:.0f} %", flush=True)
                                       if round(100 * f) % 10 == 0 else None)
                run.save(path)
                print(f"{seq} seed {seed}: done in {time.time() - start:.0f} s", flush=True)
            if path.exists():
                runs.append(MetadynamicsRun.load(path))
        if runs:
            summary = {"sequence": seq, **summarize(runs, args.tolerance)}
            atomic_write_bytes(folder / "summary.json",
                               lambda h: h.write(json.dumps(summary, indent=1).encode()))
            print(json.dumps({k: summary.get(k) for k in ("sequence", "max_abs_dF_difference_kcal_mol", "converged")}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
