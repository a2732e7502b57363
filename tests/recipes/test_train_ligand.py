"""Smoke test of recipes/train_ligand.py and of bench_ligand.py's model mode on the trained checkpoint."""

import json
from pathlib import Path

import pytest

for package in ("rdkit", "openmm", "vina", "meeko", "posebusters"):
    pytest.importorskip(package, reason=f"needs the ligand extra ({package})")

DATA = Path(__file__).resolve().parents[2] / "data" / "ligands"


def test_train_then_benchmark(load_recipe, tmp_path, capsys):
    if not (DATA / "1uou" / "samples.npz").is_file():
        pytest.skip("the committed 1uou reference is missing")
    train = load_recipe("train_ligand")
    run = tmp_path / "run"
    assert train.main(["--data", str(DATA), "--train", "1uou", "--out", str(run), "--steps", "2", "--batch-size", "8",
                       "--width", "16", "--layers", "1", "--samples-per-complex", "64", "--vector-features", "--alignment", "2"]) == 0
    summary = json.loads((run / "summary.json").read_text())
    assert summary["complexes"] == ["1uou"] and summary["step"] == 2
    with pytest.raises(SystemExit):  # another K than the initial model's is refused, not ignored
        train.main(["--data", str(DATA), "--train", "1uou", "--out", str(tmp_path / "again"), "--init", str(run / "model.pt"),
                    "--alignment", "3"])
    assert "has alignment 2" in capsys.readouterr().err  # also clears the training output before the bench's
    bench = load_recipe("bench_ligand")
    out = tmp_path / "bench.json"
    assert bench.main(["1uou", "--model", str(run / "model.pt"), "--reference", str(DATA), "-n", "4", "--steps", "2",
                       "--judge", "2", "--judge-reference", "2", "--profile", "0.2", "--profile-poses", "4",
                       "--minimize", "5", "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    row = result["results"]["1uou"]
    assert result["training_complexes"] == ["1uou"] and row["held_out"] is False
    assert row["posebusters_judged"] == 2 and 0 <= row["tv_to_reference"] <= 1 and 0 <= row["cov_r"] <= 1
    assert row["posebusters_reference"]["judged"] == 2 and 0 <= row["posebusters_reference"]["pass_fraction"] <= 1
    assert len(row["top_modes"]) >= 1 and row["num_samples"] == 4
    assert row["minimization"]["poses"] == 4 and isinstance(row["top1_valid_within_2A"], bool)
    assert all(isinstance(m["posebusters_pass"], bool) for m in row["top_modes"])
    for rows in row["denoising_profile"].values():
        (only,) = rows
        assert only["t"] == 0.2 and set(only["model"]) == set(only["oracle"]) == {"centroid", "orientation", "torsions"}
        detail = only["orientation_detail"]
        assert -1 <= detail["cosine_model_oracle"] <= 1 and min(detail["target_sq"], detail["oracle_sq"], detail["model_sq"]) >= 0
        # |m − ε|² = |m|² + |ε|² − 2 m·ε: the error is bounded by the two norms
        assert only["model"]["orientation"] <= (detail["model_sq"] ** 0.5 + detail["target_sq"] ** 0.5) ** 2 + 1e-9
