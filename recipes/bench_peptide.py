"""Benchmark a peptide model against metadynamics references (JSON on stdout).

Per peptide: basin populations and free energies (model alone and, with ``--reweight``,
importance-weighted with the force field) against the reference of
``recipes/reference_peptides.py`` (both runs' final-bias-weighted frames), the largest basin
ΔF error (kcal/mol, relative to β/C7eq), the Jensen–Shannon divergence of the (φ, ψ)
histograms (36×36 bins, natural log), the clash rate, the same basin scores after clashing
samples are relaxed out of the clash (``relaxed_*``, what ``sample_peptides`` returns by
default) or dropped (``clash_free_*``), the geometry error against the force
field's bond lengths and angles (equilibrium values r0/θ0 of ff14SB), the reweighting ESS,
and seconds per sample.  The reference simulation's cost per decorrelated sample is the
plain-MD speed (``--md-ns`` ns of unbiased MD of alanine dipeptide, measured in the same
run) divided by the slowest basin's decorrelation: a run that never leaves φ < 0 bounds
the αL/C7ax decorrelation time from below by its length.

Examples::

    python recipes/bench_peptide.py --model runs/peptide/model.pt --data data/peptides A G V -n 2000
    python recipes/bench_peptide.py --model peptide A --reweight --md-ns 1 -n 1000
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

import numpy as np


def reference_data(data, seq):
    """All runs' (φ, ψ) records (n, R, 2), their weights (sum 1, runs equally weighted) and the
    runs' stored frames (F, N, 3), Å."""
    from digmat.tasks.peptide_data import load_reference_runs

    runs = load_reference_runs(data, seq)
    angles = np.concatenate([r.phi_psi for r in runs])
    weights = np.concatenate([r.weights() / len(runs) for r in runs])
    return angles, weights, np.concatenate([r.frames for r in runs])


def js_divergence(a, wa, b, wb, bins=36):
    """Jensen–Shannon divergence (nats) of two weighted (φ, ψ) samples' histograms."""
    rng = [[-180, 180], [-180, 180]]
    p, _, _ = np.histogram2d(a[:, 0], a[:, 1], bins=bins, range=rng, weights=wa)
    q, _, _ = np.histogram2d(b[:, 0], b[:, 1], bins=bins, range=rng, weights=wb)
    p, q = p / p.sum(), q / q.sum()
    m = 0.5 * (p + q)

    def kl(x, y):
        ok = x > 0
        return float(np.sum(x[ok] * np.log(x[ok] / y[ok])))

    return 0.5 * kl(p, m) + 0.5 * kl(q, m)


def geometry_errors(system, positions, reference_frames=None):
    """Largest |bond − r0| (Å) and |angle − θ0| (°) over samples, against ff14SB's equilibria;
    with ``reference_frames`` (F, N, 3) also the largest |sample − reference mean| of every
    bond and angle, and that in units of the reference's thermal spread (its std; bonds to
    hydrogen are rigid in the reference MD and left out of the spread)."""
    from openmm import unit

    from digmat.protein import create_system

    ff = create_system(system.template)
    bonds = next(ff.getForce(i) for i in range(ff.getNumForces()) if type(ff.getForce(i)).__name__ == "HarmonicBondForce")
    angles = next(ff.getForce(i) for i in range(ff.getNumForces()) if type(ff.getForce(i)).__name__ == "HarmonicAngleForce")
    bi = np.array([bonds.getBondParameters(k)[:2] for k in range(bonds.getNumBonds())])
    r0 = np.array([bonds.getBondParameters(k)[2].value_in_unit(unit.angstrom) for k in range(bonds.getNumBonds())])
    ai = np.array([angles.getAngleParameters(k)[:3] for k in range(angles.getNumAngles())])
    t0 = np.array([angles.getAngleParameters(k)[3].value_in_unit(unit.degree) for k in range(angles.getNumAngles())])

    def measure(pos):
        d = np.linalg.norm(pos[:, bi[:, 0]] - pos[:, bi[:, 1]], axis=-1)
        u = pos[:, ai[:, 0]] - pos[:, ai[:, 1]]
        v = pos[:, ai[:, 2]] - pos[:, ai[:, 1]]
        cos = np.sum(u * v, -1) / np.linalg.norm(u, axis=-1) / np.linalg.norm(v, axis=-1)
        return d, np.degrees(np.arccos(np.clip(cos, -1, 1)))

    d, theta = measure(positions)
    out = {"bond_max_error_A": float(np.max(np.abs(d - r0))), "bond_rms_error_A": float(np.sqrt(np.mean((d - r0) ** 2))),
           "angle_max_error_deg": float(np.max(np.abs(theta - t0))), "angle_rms_error_deg": float(np.sqrt(np.mean((theta - t0) ** 2)))}
    if reference_frames is not None and len(reference_frames):
        ref_d, ref_theta = measure(np.asarray(reference_frames, dtype=float))
        bond_off, angle_off = np.abs(d - ref_d.mean(0)), np.abs(theta - ref_theta.mean(0))
        flexible = ref_d.std(0) > 1e-3
        out.update(bond_max_vs_reference_mean_A=float(bond_off.max()), angle_max_vs_reference_mean_deg=float(angle_off.max()),
                   bond_max_in_reference_std=float((bond_off[:, flexible] / ref_d.std(0)[flexible]).max()),
                   angle_max_in_reference_std=float((angle_off / ref_theta.std(0)).max()))
    return out


def plain_md(ns: float, threads: int) -> dict:
    """Unbiased MD of alanine dipeptide (the reference's dynamics without bias): speed and decorrelation."""
    import openmm
    from openmm import app, unit

    from digmat.protein import MetadynamicsConfig, assign_basins, build_peptide, create_system, peptide_topology, phi_psi

    config = MetadynamicsConfig()
    atoms = build_peptide("A")
    system = create_system(atoms, config.forcefield)
    integrator = openmm.LangevinMiddleIntegrator(300 * unit.kelvin, 1 / unit.picosecond, config.timestep_fs * unit.femtoseconds)
    sim = app.Simulation(peptide_topology(atoms), system, integrator, openmm.Platform.getPlatformByName("CPU"),
                         {"Threads": str(threads)})
    sim.context.setPositions(atoms.positions * 0.1)
    sim.context.setVelocitiesToTemperature(300 * unit.kelvin, 1)
    records = int(ns * 1000)
    frames = []
    start = time.perf_counter()
    for _ in range(records):
        sim.step(config.steps(1.0))
        frames.append(sim.context.getState(getPositions=True).getPositions(asNumpy=True).value_in_unit(unit.angstrom))
    wall = time.perf_counter() - start
    basins = assign_basins(phi_psi(atoms, np.array(frames)))[:, 0]
    taus = {}
    for b in range(4):
        x = (basins == b).astype(float)
        if x.std() == 0:
            continue
        x = x - x.mean()
        acf = np.correlate(x, x, "full")[len(x) - 1:] / (x.var() * np.arange(len(x), 0, -1))
        cut = np.argmax(acf < 0) if np.any(acf < 0) else len(acf)
        taus[b] = float(1 + 2 * np.sum(acf[1:cut]))  # ps (records are 1 ps apart)
    visited_left = bool(np.any(basins == 3))
    tau_ps = max(max(taus.values()) if taus else 0.0, 0.0 if visited_left else ns * 1000)
    return {"ns": ns, "wall_s": wall, "ns_per_day": ns / (wall / 86400), "visited_alphaL": visited_left,
            "decorrelation_ps_per_basin": taus, "slowest_decorrelation_ps": tau_ps,
            "decorrelated_samples_per_cpu_s": (ns * 1000 / tau_ps) / (wall * threads),
            "note": "αL/C7ax never visited: its decorrelation time is at least the run length" if not visited_left else ""}


def scaling(model, lengths, num, seed):
    """Seconds per sample (and per decoded conformation) of poly-alanine ACE-A_n-NME versus n."""
    import warnings

    from digmat.tasks.peptide_sampling import sample_peptides

    rows = []
    for n in lengths:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # longer than the training peptides: timing only
            ensemble = sample_peptides(model, "A" * n, num, seed=seed)
        start = time.perf_counter()
        ensemble.conformations()
        decode = time.perf_counter() - start
        rows.append({"residues": n, "state_torsions": ensemble.system.dim, "atoms": len(ensemble.system.template),
                     "seconds_per_sample": ensemble.seconds / num, "decode_seconds_per_sample": decode / num})
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("sequences", nargs="+")
    parser.add_argument("--model", default="peptide")
    parser.add_argument("--data", default="data/peptides")
    parser.add_argument("-n", "--num-samples", type=int, default=2000)
    parser.add_argument("--steps", type=int, default=None, help="sampler steps (default: the model family's)")
    parser.add_argument("--reweight", action="store_true")
    parser.add_argument("--md-ns", type=float, default=0.0, help="ns of plain MD for the speed comparison (0: skip)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--scaling", type=int, nargs="*", default=[], metavar="N",
                        help="also time sampling of poly-alanine with these numbers of residues")
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    from digmat.pretrained import load_model
    from digmat.protein import BASINS, KB_KCAL, basin_table
    from digmat.tasks.peptide_sampling import sample_peptides

    model = load_model(args.model)
    trained = set(model.config.training_sequences)
    rows = []
    for seq in args.sequences:
        ref_angles, ref_w, ref_frames = reference_data(args.data, seq)
        ensemble = sample_peptides(model, seq, args.num_samples, seed=args.seed, steps=args.steps,
                                   clashes="keep")
        clash_free, relaxed = ensemble.without_clashes("reject"), ensemble.without_clashes("relax")
        angles, free_angles, relaxed_angles = ensemble.phi_psi(), clash_free.phi_psi(), relaxed.phi_psi()
        row = {"sequence": seq, "split": "train" if seq in trained else "heldout",
               "seconds_per_sample": ensemble.seconds / args.num_samples, "clash_rate": ensemble.clash_rate(),
               "clash_free_samples": len(clash_free.states), "relaxed_samples": len(relaxed.states),
               "relaxed_clash_rate": relaxed.clash_rate(),
               **geometry_errors(ensemble.system, ensemble.positions(), ref_frames), "residues": []}
        if args.reweight:
            row["reweight"] = relaxed.reweight(model)
        for r in range(angles.shape[1]):
            ref = basin_table(ref_angles[:, r], 300.0, weights=ref_w)
            res = {"reference_populations": ref.populations.tolist(), "reference_dF": ref.relative_free_energy().tolist()}
            for label, a, weights in (("model", angles[:, r], None), ("clash_free", free_angles[:, r], None),
                                      ("relaxed", relaxed_angles[:, r], None),
                                      ("reweighted", relaxed_angles[:, r], relaxed.weights)):
                if label == "reweighted" and weights is None:
                    continue
                ours = basin_table(a, 300.0, weights=weights)
                with np.errstate(invalid="ignore"):
                    err = np.abs(ours.relative_free_energy() - ref.relative_free_energy())
                res[f"{label}_populations"] = ours.populations.tolist()
                res[f"{label}_dF"] = ours.relative_free_energy().tolist()
                res[f"{label}_max_dF_error_kcal_mol"] = float(np.nanmax(np.where(np.isfinite(err), err, np.inf)))
                res[f"{label}_js_divergence"] = js_divergence(a, weights, ref_angles[:, r], ref_w)
            row["residues"].append(res)
        rows.append(row)
        print(json.dumps({"sequence": seq, "max_dF_error": [r["model_max_dF_error_kcal_mol"] for r in row["residues"]],
                          "clash_free": [r["clash_free_max_dF_error_kcal_mol"] for r in row["residues"]],
                          "relaxed": [r["relaxed_max_dF_error_kcal_mol"] for r in row["residues"]],
                          "clash_rate": row["clash_rate"]}), file=sys.stderr)
    out = {"machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "threads": args.threads},
           "model": str(args.model), "basins": list(BASINS), "kT_kcal_mol": KB_KCAL * 300.0,
           "num_samples": args.num_samples, "peptides": rows}
    if args.md_ns > 0:
        md = plain_md(args.md_ns, args.threads)
        model_rate = 1.0 / np.median([r["seconds_per_sample"] for r in rows])
        out["reference_md"] = md
        out["speedup_decorrelated_samples_per_cpu_s"] = model_rate / md["decorrelated_samples_per_cpu_s"]
    if args.scaling:
        out["scaling_polyalanine"] = scaling(model, args.scaling, min(args.num_samples, 200), args.seed)
    print(json.dumps(out, indent=1, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
