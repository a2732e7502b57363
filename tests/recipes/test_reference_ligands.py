"""Smoke test of recipes/reference_ligands.py: a tiny tempering run on a real complex, files, resume."""

import json

import numpy as np
import pytest

pytest.importorskip("posebusters", reason="needs the ligand extra (posebusters ships the complexes)")
pytest.importorskip("meeko", reason="needs the ligand extra (meeko)")
pytest.importorskip("openmm", reason="needs the ligand extra (openmm)")


def test_tiny_run_writes_modes_and_resumes(load_recipe, tmp_path, capsys):
    from rdkit import Chem

    recipe = load_recipe("reference_ligands")
    args = ["1uou", "--out", str(tmp_path), "--steps", "60", "--burn-in", "20", "--record-every", "10",
            "--chains", "4", "--replicas", "2", "--spacing", "0.8", "--box-radius", "1.0", "--judge", "2"]
    assert recipe.main(args) == 0
    folder = tmp_path / "1uou"
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["samples"] == 4 * 4 and summary["torsions"] == 2 and summary["ligand_charge"] == 1
    assert sum(m["population"] for m in summary["modes"]) == pytest.approx(1.0)
    assert [isinstance(m.get("posebusters_pass"), bool) for m in summary["modes"][:3]] == [True, True, False]
    assert summary["crystal_vina_score"] == pytest.approx(-7.15, abs=0.05)  # Vina's own score of the crystal pose
    with np.load(folder / "samples.npz") as data:
        assert data["t"].shape == (4, 4, 3) and data["weights"].sum() == pytest.approx(1.0, abs=1e-5)
        t = data["t"].reshape(-1, 3)  # every centroid within the 1 Å ball: pairwise at most 2 Å apart
        assert np.linalg.norm(t[:, None] - t[None], axis=-1).max() <= 2.0 + 1e-5
    modes = [m for m in Chem.SDMolSupplier(str(folder / "modes.sdf"), removeHs=False)]
    assert len(modes) == len(summary["modes"]) and modes[0].GetProp("population")
    stamp = (folder / "samples.npz").stat().st_mtime_ns
    assert recipe.main(args) == 0 and (folder / "samples.npz").stat().st_mtime_ns == stamp
    assert "done already" in capsys.readouterr().out


def test_bad_case_is_one_line(load_recipe, tmp_path, capsys):
    recipe = load_recipe("reference_ligands")
    assert recipe.main(["9xyz", "--out", str(tmp_path)]) == 2
    assert "not a PoseBusters example" in capsys.readouterr().err
    assert recipe.main(["--protein", "p.pdb", "--out", str(tmp_path)]) == 2


def test_folder_case_names_its_files_relative_to_the_reference(load_recipe, tmp_path):
    import shutil

    from digmat.ligand.checks import posebusters_example
    from digmat.tasks.ligand_data import complex_files

    protein, sdf = posebusters_example("1uou")
    case = tmp_path / "complexes" / "mine"
    case.mkdir(parents=True)
    shutil.copy(protein, case / "protein.pdb")
    shutil.copy(sdf, case / "ligand.sdf")
    recipe = load_recipe("reference_ligands")
    args = ["mine", "--complexes", str(tmp_path / "complexes"), "--out", str(tmp_path / "refs"), "--steps", "20",
            "--burn-in", "10", "--record-every", "10", "--chains", "2", "--replicas", "2", "--spacing", "0.8",
            "--box-radius", "1.0", "--judge", "0"]
    assert recipe.main(args) == 0
    summary = json.loads((tmp_path / "refs" / "mine" / "summary.json").read_text())
    assert summary["protein"] == "../../complexes/mine/protein.pdb"
    moved = tmp_path / "moved"
    shutil.move(tmp_path / "refs", moved / "refs")  # the reference travels with its complexes
    shutil.move(tmp_path / "complexes", moved / "complexes")
    found = complex_files("mine", moved / "refs")
    assert found[0].resolve() == (moved / "complexes" / "mine" / "protein.pdb").resolve() and found[1].is_file()
