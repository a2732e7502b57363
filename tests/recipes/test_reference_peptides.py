"""Smoke test of recipes/reference_peptides.py: tiny runs, summary, resume, halves of three runs."""

import json

import pytest

pytest.importorskip("openmm", reason="needs the protein extra (openmm)")
pytest.importorskip("rdkit", reason="needs the protein extra (rdkit)")


def test_two_runs_summary_and_resume(load_recipe, tmp_path, capsys):
    recipe = load_recipe("reference_peptides")
    assert recipe.main(["A", "--out", str(tmp_path), "--ns", "0.01", "--threads", "1"]) == 0
    folder = tmp_path / "A"
    assert {p.name for p in folder.iterdir()} == {"run0.npz", "run1.npz", "summary.json"}
    summary = json.loads((folder / "summary.json").read_text())
    assert len(summary["runs"]) == 2 and summary["basins"][0] == "β/C7eq"
    for run in summary["runs"]:
        assert sum(run["residues"][0]["populations"]) == pytest.approx(1.0)
        assert sum(run["grid_populations"]) == pytest.approx(1.0)
    assert "converged" in summary
    stamp = (folder / "run0.npz").stat().st_mtime_ns
    assert recipe.main(["A", "--out", str(tmp_path), "--ns", "0.01"]) == 0
    assert (folder / "run0.npz").stat().st_mtime_ns == stamp  # finished runs are not redone

    # a third run: the halves are seeds {0, 2} and {1}, each the mean of its runs' populations
    assert recipe.main(["A", "--out", str(tmp_path), "--ns", "0.01", "--seeds", "0", "1", "2"]) == 0
    assert (folder / "run0.npz").stat().st_mtime_ns == stamp
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["half_seeds"] == [[0, 2], [1]]
    pops = [run["residues"][0]["populations"] for run in summary["runs"]]
    assert summary["half_populations"][0][0] == pytest.approx([(a + b) / 2 for a, b in zip(pops[0], pops[2])])
    assert summary["half_populations"][1][0] == pytest.approx(pops[1])


def test_bad_sequence_is_one_line(load_recipe, tmp_path, capsys):
    recipe = load_recipe("reference_peptides")
    assert recipe.main(["AJ", "--out", str(tmp_path)]) == 2
    assert "'J' at position 2" in capsys.readouterr().err


def test_too_long_a_peptide_is_refused_before_any_run(load_recipe, tmp_path, capsys):
    recipe = load_recipe("reference_peptides")
    assert recipe.main(["A", "AAAA", "--out", str(tmp_path)]) == 2
    assert capsys.readouterr().err.strip() == "error: AAAA: metadynamics references take at most 3 residues"
    assert not any(tmp_path.iterdir())  # nothing built or simulated, not even for A
