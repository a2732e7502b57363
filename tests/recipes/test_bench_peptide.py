"""Smoke test of recipes/bench_peptide.py on a synthetic reference and an untrained model."""

import json

import numpy as np
import pytest
import torch

pytest.importorskip("openmm", reason="needs the protein extra (openmm)")
pytest.importorskip("rdkit", reason="needs the protein extra (rdkit)")


def test_bench_json(load_recipe, tmp_path, capsys):
    from digmat.checkpoint import save_checkpoint
    from digmat.models import PeptideModelConfig, PeptideScoreModel
    from digmat.protein import MetadynamicsRun

    rng = np.random.default_rng(0)
    pairs = rng.uniform(-180, 180, size=(200, 2))
    meta = {"sequence": "A", "seed": 0, "config": {"temperature": 300.0, "bias_factor": 6.0, "burn_in": 0.0}}
    (tmp_path / "A").mkdir()
    from digmat.protein import build_peptide

    # Reference frames: the built peptide jittered by 0.01 Å (the samples share its bonds and angles).
    frames = (build_peptide("A").positions + rng.normal(scale=0.01, size=(8, 22, 3))).astype(np.float32)
    MetadynamicsRun(pairs[:, None], np.zeros(200), np.zeros((72, 72)), ["phi2", "psi2"], frames,
                    np.arange(8), meta, torsions=pairs, torsion_names=["phi:2", "psi:2"]).save(tmp_path / "A" / "run0.npz")
    config = PeptideModelConfig(width=16, layers=1, heads=2, ffn=32, training_sequences=("A",))
    save_checkpoint(tmp_path / "m.pt", config=config.to_dict(), state_dict=PeptideScoreModel(config).state_dict(),
                    metadata={"kind": "peptide"}, kind="peptide")
    bench = load_recipe("bench_peptide")
    assert bench.main(["A", "--model", str(tmp_path / "m.pt"), "--data", str(tmp_path), "-n", "16", "--steps", "10",
                       "--reweight", "--md-ns", "0.01", "--scaling", "1", "3"]) == 0
    out = json.loads(capsys.readouterr().out)
    (row,) = out["peptides"]
    assert row["split"] == "train" and row["clash_rate"] >= 0
    # Torsion-space samples keep the template's bonds: errors are those of the minimised template.
    assert row["bond_max_error_A"] < 0.05 and row["angle_max_error_deg"] < 10
    assert 0 < row["bond_max_vs_reference_mean_A"] < 0.03 and 0 < row["angle_max_vs_reference_mean_deg"] < 3
    assert row["bond_max_in_reference_std"] > 0
    res = row["residues"][0]
    assert sum(res["reference_populations"]) == pytest.approx(1.0)
    assert 0 <= res["model_js_divergence"] <= np.log(2) + 1e-9
    assert "reweighted_dF" in res and row["reweight"]["effective_sample_size"] >= 1
    assert out["reference_md"]["ns"] == 0.01 and out["speedup_decorrelated_samples_per_cpu_s"] > 0
    assert [r["residues"] for r in out["scaling_polyalanine"]] == [1, 3]
    assert out["scaling_polyalanine"][1]["state_torsions"] == 6
    torch.set_num_threads(2)
