"""Smoke test of recipes/bench_ligand.py: one complex, one small pocket, coarse maps."""

import json

import pytest

for package in ("posebusters", "vina", "meeko", "gfnff", "openmm"):
    pytest.importorskip(package, reason=f"needs the ligand extra ({package})")


def test_bench_runs_and_agrees_with_vina(load_recipe, tmp_path, capsys):
    recipe = load_recipe("bench_ligand")
    out = tmp_path / "bench.json"
    assert recipe.main(["1uou", "--radii", "4", "--batches", "2", "--repeats", "1", "--spacing", "1.0",
                        "--out", str(out)]) == 0
    result = json.loads(out.read_text())["results"]["1uou"]
    assert result["gfnff"][0]["atoms"] > result["ligand_atoms"] and result["gfnff"][0]["energy_forces_s"] > 0
    vina = result["vina"]
    assert vina["abs_difference_kcal_mol"] < 0.02  # the torch score equals Vina's own on the crystal pose
    assert vina["batches"][0]["batch"] == 2 and vina["batches"][0]["maps_s_per_pose"] > 0
    assert recipe.main(["9xyz"]) == 2 and "not a PoseBusters example" in capsys.readouterr().err


def test_bad_reweight_is_refused_before_any_work(load_recipe, capsys):
    recipe = load_recipe("bench_ligand")
    assert recipe.main(["1uou", "--model", "ligand", "--reweight", "xtb"]) == 2
    assert "unknown ligand calculator 'xtb'" in capsys.readouterr().err
    assert recipe.main(["1uou", "--reweight", "gfnff"]) == 2
    assert "--reweight needs --model" in capsys.readouterr().err
    assert recipe.main(["1uou", "--model", "ligand", "--reweight", "gfnff", "--reweight-starts", "0"]) == 2
    assert "starts_per_mode >= 1" in capsys.readouterr().err


def test_log_prob_needs_the_raw_samples_of_a_model(load_recipe, capsys):
    recipe = load_recipe("bench_ligand")
    for args in (["--log-prob", "10"], ["--model", "ligand", "--log-prob", "10", "--minimize", "5"]):
        assert recipe.main(["1uou", *args]) == 2
        assert "--log-prob weighs the model's raw samples" in capsys.readouterr().err
