"""``digmat ligand``: files, table, JSON, SMILES input, and one-line errors before any sampling."""

import json

import numpy as np
import pytest
import torch

for _name in ("rdkit", "openmm", "vina", "meeko", "posebusters"):
    pytest.importorskip(_name, reason="needs the ligand extra")

from digmat.checkpoint import save_checkpoint  # noqa: E402
from digmat.cli.main import main  # noqa: E402
from digmat.models.ligand import LigandModelConfig, LigandScoreModel  # noqa: E402


@pytest.fixture(scope="module")
def ligand_model(tmp_path_factory):
    """An untrained one-layer ligand checkpoint (for I/O and messages, not accuracy)."""
    torch.manual_seed(0)
    config = LigandModelConfig(width=16, layers=1, rbf=8, training_complexes=("1uou",))
    path = tmp_path_factory.mktemp("model") / "ligand.pt"
    save_checkpoint(path, config=config.to_dict(), state_dict=LigandScoreModel(config).state_dict(), kind="ligand")
    return str(path)


def test_sdf_input_writes_poses_modes_picture_and_json(ligand_model, posebusters_case, tmp_path, capsys):
    protein, sdf = posebusters_case("1uou")
    out = tmp_path / "out"
    assert main(["ligand", str(protein), str(sdf), "--model", ligand_model, "-n", "6", "--steps", "3",
                 "--no-checks", "--out", str(out), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["num_samples"] == 6 and summary["torsions"] == 2
    assert all("rmsd_to_reference" in row for row in summary["modes"])
    assert sum(row["population"] for row in summary["modes"]) <= 1.0 + 1e-9
    for name in ("poses.sdf", "modes.sdf", "modes.png", "ligand.json"):
        assert (out / name).stat().st_size > 0
    from rdkit import Chem

    poses = list(Chem.SDMolSupplier(str(out / "poses.sdf"), removeHs=False))
    ratio = np.array([float(m.GetProp("contact_ratio")) for m in poses])
    assert len(ratio) == 6 and (ratio > 0).all()
    assert summary["clash_free_fraction"] == pytest.approx(float((ratio >= 0.75).mean()))


def test_log_prob_reports_every_pose_each_mode_and_the_input_pose(ligand_model, posebusters_case, tmp_path, capsys):
    """--log-prob: log_p per pose in poses.sdf, each mode's mean and largest over its poses, the input
    pose's beside them, and the line in the table."""
    from rdkit import Chem

    protein, sdf = posebusters_case("1uou")
    out = tmp_path / "out"
    assert main(["ligand", str(protein), str(sdf), "--model", ligand_model, "-n", "6", "--steps", "3", "--refine", "0",
                 "--minimize", "0", "--log-prob", "4", "--no-checks", "--out", str(out)]) == 0
    assert "model log-density" in capsys.readouterr().out
    summary = json.loads((out / "ligand.json").read_text())
    poses = list(Chem.SDMolSupplier(str(out / "poses.sdf"), removeHs=False))
    log_p = np.array([float(m.GetProp("log_p")) for m in poses])
    mode = np.array([int(m.GetProp("mode")) for m in poses])
    assert np.isfinite(log_p).all() and np.isfinite(summary["input_log_p"])
    for row in summary["modes"]:
        members = log_p[mode == row["mode"]]
        assert row["log_p_max"] == pytest.approx(members.max(), abs=1e-3)
        assert row["log_p_mean"] == pytest.approx(members.mean(), abs=1e-3)


@pytest.mark.slow  # ~40-80 s of GFN-FF relaxations and Hessians
def test_reweight_relaxes_modes_and_the_input_pose_with_gfnff(ligand_model, posebusters_case, tmp_path, capsys):
    """--reweight gfnff: one mode relaxed in the fixed pocket, its harmonic population (the only
    mode: 1), the crystal pose weighed beside it, the relaxed poses written and readable by RDKit."""
    pytest.importorskip("gfnff", reason="needs the ligand extra (gfnff)")
    from rdkit import Chem

    protein, sdf = posebusters_case("1uou")
    out = tmp_path / "out"
    assert main(["ligand", str(protein), str(sdf), "--model", ligand_model, "-n", "4", "--steps", "3", "--refine", "20",
                 "--reweight", "gfnff", "--reweight-modes", "1", "--no-checks", "--out", str(out), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    rw = summary["reweight"]
    assert rw["calculator"] == "gfnff" and rw["calls"] > 6 * 28 and 0 < rw["model_coverage"] <= 1
    top = summary["modes"][0]
    assert top["reweighted_population"] == pytest.approx(1.0) and top["free_energy"] == 0.0
    assert top["relaxation_anomalous"] is False
    assert top["relaxed_rmsd_to_reference"] >= 0
    assert all("reweighted_population" not in row for row in summary["modes"][1:])  # only one mode relaxed
    assert rw["reference"]["relaxation_rmsd"] < 1.0  # the crystal pose stays near a GFN-FF minimum
    relaxed = [m for m in Chem.SDMolSupplier(str(out / "modes_relaxed.sdf"), removeHs=False)]
    assert len(relaxed) == 1 and relaxed[0].GetNumAtoms() == 28
    assert float(relaxed[0].GetProp("reweighted_population")) == pytest.approx(1.0)


def test_smiles_input_with_a_centre_prints_a_table(ligand_model, posebusters_case, tmp_path, capsys):
    protein, _ = posebusters_case("1uou")
    assert main(["ligand", str(protein), "OC(=O)c1ccccc1", "--center", "-3.5", "2.0", "29.2", "--model", ligand_model,
                 "-n", "4", "--steps", "2", "--minimize", "10", "--no-checks", "--out", str(tmp_path)]) == 0
    text = capsys.readouterr().out
    assert "population" in text and "written to" in text and "RMSD" in text
    assert "quenched to their local minima" in text
    assert json.loads((tmp_path / "ligand.json").read_text())["minimization"]["poses"] == 4


@pytest.mark.parametrize("args, message", [
    (["OC(=O)c1ccccc1"], "needs --center"),
    (["missing.sdf"], "no such file"),
    (["LIGAND", "-T", "400"], "trained at 300 K only"),
    (["LIGAND", "--center", "500", "500", "500"], "no protein atom within"),
    (["LIGAND", "-n", "0"], ">= 1"),
    (["LIGAND", "--minimize", "-1"], ">= 0"),
    (["LIGAND", "--log-prob", "-2"], ">= 0"),
    (["LIGAND", "--reweight", "xtb"], "unknown ligand calculator 'xtb'"),
    (["LIGAND", "--reweight", "gfnff", "--reweight-starts", "0"], "--reweight-starts"),
])
def test_bad_input_is_one_line(ligand_model, posebusters_case, tmp_path, capsys, args, message):
    protein, sdf = posebusters_case("1uou")
    args = [str(sdf) if a == "LIGAND" else a for a in args]
    code = main(["ligand", str(protein), *args, "--model", ligand_model, "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2 and message in err and "Traceback" not in err
    assert not (tmp_path / "o" / "poses.sdf").exists()


def test_a_model_of_another_kind_is_refused(tiny_model, posebusters_case, tmp_path, capsys):
    protein, sdf = posebusters_case("1uou")
    assert main(["ligand", str(protein), str(sdf), "--model", str(tiny_model), "--out", str(tmp_path)]) == 2
    assert "not a ligand model" in capsys.readouterr().err
