"""Smoke test of recipes/weigh_reference_ligands.py on a tiny 1uou reference, and of training and
benchmarking against the weights it writes (``train_ligand.py --weights``, ``bench_ligand.py
--reference-weights``)."""

import json

import numpy as np
import pytest

for package in ("posebusters", "meeko", "openmm", "gfnff", "vina"):
    pytest.importorskip(package, reason=f"needs the ligand extra ({package})")


@pytest.fixture(scope="module")
def weighed(tmp_path_factory, load_recipe):
    data = tmp_path_factory.mktemp("ligands")
    assert load_recipe("reference_ligands").main(
        ["1uou", "--out", str(data), "--steps", "60", "--burn-in", "20", "--record-every", "10", "--chains", "4",
         "--replicas", "2", "--spacing", "0.8", "--box-radius", "4.0", "--judge", "0"]) == 0
    args = ["1uou", "--data", str(data), "--by-population", "2", "--by-energy", "1", "--starts", "1",
            "--relax-steps", "4", "--window", "0"]
    assert load_recipe("weigh_reference_ligands").main(args) == 0
    return data, args


def test_weights_give_each_relaxed_mode_its_population(weighed):
    data, _ = weighed
    folder = data / "1uou"
    record = json.loads((folder / "weights_gfnff.json").read_text())
    summary = json.loads((folder / "summary.json").read_text())
    with np.load(folder / "samples.npz") as own, np.load(folder / "weights_gfnff.npz") as new:
        assert new["weights"].shape == own["weights"].shape
        w = new["weights"].astype(float)
    assert w.sum() == pytest.approx(1.0, abs=1e-5) and (w >= 0).all()
    pops = np.asarray(record["mode_populations"])
    assert len(pops) == len(summary["modes"]) == record["modes_total"] and pops.sum() == pytest.approx(1.0, abs=1e-6)
    relaxed = {row["mode"]: row for row in record["relaxed_modes"]}
    assert 1 in relaxed and 2 <= len(relaxed) <= 3  # two most populated + the lowest in energy
    assert all(pops[k - 1] == 0 for k in range(1, len(pops) + 1) if k not in relaxed)  # not relaxed: no weight
    assert sum(row["population"] for row in relaxed.values()) == pytest.approx(1.0, abs=1e-6)
    # --window 0: only the lowest relaxed minimum has a Hessian and all the population
    weighed_rows = [row for row in relaxed.values() if row["harmonic"]]
    assert len(weighed_rows) == 1 and weighed_rows[0]["energy"] == pytest.approx(0.0, abs=1e-9)
    lowest = weighed_rows[0]["mode"]
    sharing = [m for m, row in relaxed.items() if m == lowest or row["same_as"] == lowest]
    assert sum(pops[m - 1] for m in sharing) == pytest.approx(1.0, abs=1e-6)
    assert record["crystal"]["free_energy"] is not None and record["calls"] > 0


def test_resume_and_bad_input(weighed, load_recipe, capsys):
    data, args = weighed
    recipe = load_recipe("weigh_reference_ligands")
    stamp = (data / "1uou" / "weights_gfnff.npz").stat().st_mtime_ns
    assert recipe.main(args) == 0 and (data / "1uou" / "weights_gfnff.npz").stat().st_mtime_ns == stamp
    assert "done already" in capsys.readouterr().out
    assert recipe.main(["1s3v", "--data", str(data)]) == 2
    assert "no reference samples" in capsys.readouterr().err
    assert recipe.main(["1uou", "--data", str(data), "--calculator", "xtb"]) == 2
    assert "unknown ligand calculator" in capsys.readouterr().err


def test_train_and_bench_on_the_weighed_reference(weighed, load_recipe, tmp_path):
    data, _ = weighed
    run = tmp_path / "run"
    assert load_recipe("train_ligand").main(["--data", str(data), "--train", "1uou", "--out", str(run), "--steps", "2",
                                             "--batch-size", "8", "--width", "16", "--layers", "1",
                                             "--samples-per-complex", "64", "--weights", "gfnff"]) == 0
    again = tmp_path / "again"  # warm start from the first run's weights
    assert load_recipe("train_ligand").main(["--data", str(data), "--train", "1uou", "--out", str(again), "--steps", "1",
                                             "--batch-size", "8", "--samples-per-complex", "64", "--weights", "gfnff",
                                             "--init", str(run / "model.pt")]) == 0
    from digmat.pretrained import load_model

    warm = load_model(again / "model.pt")
    assert warm.config.width == 16 and warm.metadata["init"] == str(run / "model.pt")
    assert warm.metadata["reference_weights"] == "gfnff"
    out = tmp_path / "bench.json"
    assert load_recipe("bench_ligand").main(["1uou", "--model", str(run / "model.pt"), "--reference", str(data), "-n", "4",
                                             "--steps", "2", "--judge", "0", "--reference-weights", "gfnff",
                                             "--out", str(out)]) == 0
    row = json.loads(out.read_text())["results"]["1uou"]
    record = json.loads((data / "1uou" / "weights_gfnff.json").read_text())
    assert row["reference_weights"] == "gfnff"
    assert [m["reference"] for m in row["reference_top_modes"]] == pytest.approx(
        [record["mode_populations"][k] for k in range(len(row["reference_top_modes"]))])
    assert 0 <= row["tv_to_reference"] <= 1
    with pytest.raises(FileNotFoundError, match="no vacuum weights"):
        from digmat.tasks.ligand_data import reference_weights

        reference_weights(data / "1uou", "vacuum")


def test_mining_minima_weighs_every_minimum_and_compares_halves(weighed, load_recipe, capsys):
    data, _ = weighed
    folder = data / "1uou"
    args = ["1uou", "--data", str(data), "--by-population", "2", "--by-energy", "0", "--relax-steps", "4",
            "--window", "5", "--mine", "4", "--tag", "gfnff-minima"]
    recipe = load_recipe("weigh_reference_ligands")
    assert recipe.main(args) == 0
    record = json.loads((folder / "weights_gfnff-minima.json").read_text())
    with np.load(folder / "samples.npz") as own, np.load(folder / "weights_gfnff-minima.npz") as new:
        w, w_own = new["weights"].astype(float).reshape(-1), own["weights"].reshape(-1)
    with np.load(folder / "minima_gfnff-minima.npz") as minima:
        modes, g, starts = minima["mode"], minima["free_energy"], minima["starts"]
    assert record["method"] == "mining minima" and w.sum() == pytest.approx(1.0, abs=1e-5)
    rows = record["relaxed_modes"]
    assert [r["mode"] for r in rows] == [1, 2] and sum(r["starts"] for r in rows) <= 8
    assert starts.sum() + record["anomalous_starts"] == sum(r["starts"] for r in rows)  # every start: a minimum or flagged
    pops = np.asarray(record["mode_populations"])
    assert pops.sum() == pytest.approx(1.0) and (pops[2:] == 0).all()
    # each mode's population is the Boltzmann sum over its own minima (kcal/mol, 300 K)
    boltz = np.where(np.isnan(g), 0.0, np.exp(-np.nan_to_num(g, nan=0.0) / (0.0019872041 * 300.0)))
    assert pops[:2] == pytest.approx([boltz[modes == k].sum() / boltz.sum() for k in (1, 2)], abs=1e-6)
    assert 0 <= record["max_half_difference"] <= 1 and all(len(r["half_populations"]) == 2 for r in rows)
    assert record["crystal"]["nearest_minimum_mode"] in (1, 2) and record["distinct_minima"] == len(modes)
    assert [m["mode"] for m in record["minima"]] == modes.tolist()  # mode numbers of modes.sdf
    assert (w > 0).sum() < (w_own > 0).sum()  # samples outside the two mined modes lose their weight
    assert recipe.main(args) == 0 and "done already" in capsys.readouterr().out
    assert recipe.main(args[:-4] + ["--mine", "3"]) == 2 and "even number" in capsys.readouterr().err


def test_pocket_convergence_reweighs_the_mined_minima_in_each_radius(weighed, load_recipe, tmp_path, capsys):
    data, _ = weighed
    folder = data / "1uou"
    if not (folder / "minima_gfnff-minima.npz").is_file():
        test_mining_minima_weighs_every_minimum_and_compares_halves(weighed, load_recipe, capsys)
    recipe = load_recipe("ligand_pocket_convergence")
    out = tmp_path / "radii.json"
    args = ["1uou", "--data", str(data), "--tag", "gfnff-minima", "--radii", "5", "3.5", "--relax-steps", "3",
            "--no-harmonic", "--flexible", "3", "--flexible-steps", "3", "--out", str(out)]
    assert recipe.main(args) == 0
    record = json.loads(out.read_text())
    with np.load(folder / "minima_gfnff-minima.npz") as minima:
        mode_numbers = sorted(set(minima["mode"][record["minima"]].tolist()))
    rows = record["radii"]
    assert [r["radius"] for r in rows] == [3.5, 5.0] and rows[0]["pocket_atoms"] < rows[1]["pocket_atoms"]
    for row in rows:
        assert [m["mode"] for m in row["modes"]] == mode_numbers
        assert sum(m["population"] for m in row["modes"]) == pytest.approx(1.0)
        crystal = next(m for m in row["modes"] if m["mode"] == record["crystal_mode"])
        assert crystal["free_energy_minus_crystal_mode"] == 0.0
        assert 0 <= row["unconverged"] <= len(record["minima"])  # 3 L-BFGS steps: most stop short
        # side chains within 3 Å free: one relaxation per weighed mode, from its fixed-pocket minimum, downhill
        flex = {f["mode"]: f for f in row["flexible"]}
        assert set(flex) == {m["mode"] for m in row["modes"] if m["lowest_free_energy"] is not None}
        assert flex[record["crystal_mode"]]["energy_minus_crystal_mode"] == 0.0
        assert all(f["flexible_atoms"] > 0 and f["side_chain_rmsd"] > 0 and f["gain"] < 0 for f in flex.values())
    # the cache of radius 5 holds relaxations in the pocket of that radius: GFN-FF gives back its energies
    from digmat.ligand import complex_atoms, extract_pocket, ligand_atoms, ligand_calculator, read_ligand
    from digmat.tasks.ligand_data import complex_files

    protein, sdf = complex_files("1uou", data)
    mol = read_ligand(sdf)
    with np.load(folder / "minima_gfnff-minima.npz") as minima:
        points = np.concatenate([minima["positions"][:, [a.GetAtomicNum() > 1 for a in mol.GetAtoms()]].reshape(-1, 3),
                                 ligand_atoms(mol).positions[[a.GetAtomicNum() > 1 for a in mol.GetAtoms()]]])
    base = complex_atoms(extract_pocket(protein, points, radius=5.0), ligand_atoms(mol))
    assert base.info["pocket_atoms"] == rows[1]["pocket_atoms"]
    with np.load(folder / "minima_gfnff-minima.r5.cache.npz") as cache:
        x, energy = cache["x"][0], float(cache["energy"][0])
    work = base.copy()
    work.positions[base.info["pocket_atoms"]:] = x
    work.calc = ligand_calculator("gfnff", base.info["charge"])
    # to 0.02 kcal/mol: GFN-FF sets its topology from the first geometry it sees (the start there, the minimum here)
    assert work.get_potential_energy() == pytest.approx(energy, abs=1e-3)
    assert recipe.main(args[:-2] + ["--tag", "nothing"]) == 2 and "no mined minima" in capsys.readouterr().err
