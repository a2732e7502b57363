"""PoseBusters judges poses: the crystal pose passes, a pose pushed into the protein does not."""

import numpy as np
import pytest


def test_crystal_passes_and_a_buried_pose_fails(posebusters_case):
    pytest.importorskip("posebusters", reason="needs the ligand extra (posebusters)")
    from digmat.ligand.checks import mols_at, posebusters_checks
    from digmat.ligand.molecule import read_ligand
    from digmat.ligand.pocket import read_protein

    protein, sdf = posebusters_case("1uou")
    mol = read_ligand(sdf)
    x = mol.GetConformer().GetPositions()
    # push the ligand 2.5 Å towards the nearest protein atom: it overlaps the protein
    from openmm import unit

    topology, positions = read_protein(protein)
    xyz = np.asarray(positions.value_in_unit(unit.angstrom))
    centroid = x.mean(0)
    nearest = xyz[np.argmin(np.linalg.norm(xyz - centroid, axis=1))]
    shift = 2.5 * (nearest - centroid) / np.linalg.norm(nearest - centroid)
    mols = mols_at(mol, np.stack([x, x + shift]), names=["crystal", "buried"])
    assert [m.GetProp("_Name") for m in mols] == ["crystal", "buried"]
    assert np.allclose(mols[1].GetConformer().GetPositions(), x + shift)
    crystal, buried = posebusters_checks(mols, protein)
    assert crystal["all"] and crystal["bond_lengths"] and crystal["minimum_distance_to_protein"]
    assert not buried["all"] and not buried["minimum_distance_to_protein"]
    assert buried["bond_lengths"] and buried["internal_steric_clash"]  # its own chemistry is intact


def test_checks_survive_a_closed_rdkit_log_stream(posebusters_case, tmp_path, monkeypatch):
    """PoseBusters hands RDKit's log handler back to the sys.stderr of its last call; once that
    stream is closed (an earlier test's captured output) the next call must still judge poses."""
    pytest.importorskip("posebusters", reason="needs the ligand extra (posebusters)")
    import rdkit

    from digmat.ligand.checks import posebusters_checks
    from digmat.ligand.molecule import read_ligand

    protein, sdf = posebusters_case("1uou")
    closed = open(tmp_path / "closed.log", "w")
    closed.close()
    monkeypatch.setattr(rdkit.log_handler, "stream", closed)
    (crystal,) = posebusters_checks([read_ligand(sdf)], protein)
    assert crystal["all"] and crystal["bond_lengths"]


def test_no_poses_give_no_checks(posebusters_case):
    pytest.importorskip("posebusters", reason="needs the ligand extra (posebusters)")
    from digmat.ligand.checks import posebusters_checks

    protein, _ = posebusters_case("1uou")
    assert posebusters_checks([], protein) == []  # PoseBusters itself fails on an empty list
