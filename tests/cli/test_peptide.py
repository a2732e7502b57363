"""``digmat peptide``: files, table, JSON, PDB input, reweighting, one-line errors."""

import json

import pytest
import torch

pytest.importorskip("openmm", reason="needs the protein extra (openmm)")
pytest.importorskip("rdkit", reason="needs the protein extra (rdkit)")

from digmat.checkpoint import save_checkpoint  # noqa: E402
from digmat.cli.main import main  # noqa: E402
from digmat.models import PeptideModelConfig, PeptideScoreModel  # noqa: E402


@pytest.fixture(scope="module")
def peptide_model(tmp_path_factory):
    """An untrained one-layer peptide checkpoint (for I/O and messages, not accuracy)."""
    torch.manual_seed(0)
    config = PeptideModelConfig(width=16, layers=1, heads=2, ffn=32, training_sequences=("A",))
    model = PeptideScoreModel(config)
    path = tmp_path_factory.mktemp("model") / "peptide.pt"
    save_checkpoint(path, config=config.to_dict(), state_dict=model.state_dict(), ema_state_dict=None,
                    metadata={"kind": "peptide", "reference_histograms": {"A": [[[1.0 / 36**2] * 36] * 36]}},
                    kind="peptide")
    return str(path)


def test_sequence_writes_ensemble_plot_and_json(peptide_model, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["peptide", "A", "--model", peptide_model, "-n", "16", "--steps", "10", "--out", str(out), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["sequence"] == "A" and summary["num_samples"] == 16
    assert summary["reference_contours"] is True
    assert set(summary["basins"]["2"]) == {"β/C7eq", "PII", "αR", "αL/C7ax"}
    assert sum(row["population"] for row in summary["basins"]["2"].values()) == pytest.approx(1.0)
    assert summary["clash_rate"] == 0 and summary["draws"] >= 16 and 0 <= summary["raw_clash_rate"] < 1
    for name in ("ensemble.pdb", "ensemble.extxyz", "ramachandran.png", "peptide.json"):
        assert (out / name).stat().st_size > 0


def test_table_and_reweight(peptide_model, tmp_path, capsys):
    assert main(["peptide", "G", "--model", peptide_model, "-n", "8", "--steps", "5", "--reweight",
                 "--out", str(tmp_path)]) == 0
    text = capsys.readouterr().out
    assert "effective sample size" in text and "αL/C7ax" in text and "ACE-G-NME" in text
    assert main(["peptide", "G", "--model", peptide_model, "-n", "8", "--steps", "5", "--clashes", "keep", "--json",
                 "--out", str(tmp_path / "raw")]) == 0
    assert "raw_clash_rate" not in json.loads(capsys.readouterr().out)


def test_pdb_input(peptide_model, tmp_path, capsys):
    from digmat.protein import build_peptide, write_pdb

    write_pdb(tmp_path / "in.pdb", build_peptide("V"))
    assert main(["peptide", str(tmp_path / "in.pdb"), "--model", peptide_model, "-n", "4", "--steps", "5",
                 "--out", str(tmp_path / "o"), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["sequence"] == "V" and summary["reference_contours"] is False


@pytest.mark.parametrize("args, message", [
    (["AXG"], "'X' at position 2"),
    (["missing.pdb"], "no such file"),
    (["A", "-T", "400"], "outside what this model was trained on"),
    (["A", "-n", "0"], ">= 1"),
])
def test_bad_input_is_one_line(peptide_model, tmp_path, capsys, args, message):
    code = main(["peptide", *args, "--model", peptide_model, "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2 and message in err and "Traceback" not in err
    assert not (tmp_path / "o" / "ensemble.pdb").exists()


def test_a_model_of_another_kind_is_refused(tiny_model, tmp_path, capsys):
    assert main(["peptide", "A", "--model", str(tiny_model), "--out", str(tmp_path)]) == 2
    assert "not a peptide model" in capsys.readouterr().err


def test_density_of_peptide_conformations(peptide_model, tmp_path, capsys):
    """The untrained model's output layer is zero: its density is uniform on the torus, −d ln 2π."""
    import math

    assert main(["peptide", "A", "--model", peptide_model, "-n", "3", "--steps", "5", "--out", str(tmp_path / "s")]) == 0
    capsys.readouterr()
    assert main(["density", str(tmp_path / "s" / "ensemble.pdb"), "--model", peptide_model,
                 "--out", str(tmp_path / "d"), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["sequence"] == "A" and len(summary["log_density"]) == 3
    assert summary["log_density"] == pytest.approx([-2 * math.log(2 * math.pi)] * 3, abs=1e-6)
    assert all(b in ("β/C7eq", "PII", "αR", "αL/C7ax") for b in summary["basins"])


def test_interpolate_between_peptide_conformations(peptide_model, tmp_path, capsys):
    from ase.io import read

    from digmat.protein import build_peptide, phi_psi, set_dihedrals, state_torsions, write_pdb

    atoms = build_peptide("A")
    ds = state_torsions(atoms)
    write_pdb(tmp_path / "ends.pdb", [set_dihedrals(atoms, ds, [-80, 75]), set_dihedrals(atoms, ds, [-65, -40])])
    assert main(["interpolate", f"{tmp_path / 'ends.pdb'}@0", f"{tmp_path / 'ends.pdb'}@1", "--model", peptide_model,
                 "-k", "5", "--out", str(tmp_path / "p"), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["basins"][0] == "β/C7eq" and summary["basins"][-1] == "αR"
    assert summary["relaxed_energies_kcal_mol"][0] == 0.0 and len(summary["fractions"]) == 5
    path = read(tmp_path / "p" / "path.pdb", index=":")
    ends = phi_psi(atoms, __import__("numpy").stack([path[0].positions, path[-1].positions]))[:, 0]
    assert abs(ends[0, 0] + 80) < 1.0 and abs(ends[1, 1] + 40) < 1.0  # the ends are the inputs (ODE round trip)
