"""Ligand fixtures: the PoseBusters wheel's real complexes (protein without the ligand + crystal SDF)."""

import pytest


@pytest.fixture(scope="session")
def posebusters_case():
    """``posebusters_case("1uou")`` -> (protein PDB path, crystal ligand SDF path)."""
    pytest.importorskip("rdkit", reason="needs the ligand extra (rdkit)")
    pytest.importorskip("openmm", reason="needs the ligand extra (openmm)")
    pytest.importorskip("posebusters", reason="needs the ligand extra (posebusters ships the complexes)")
    from digmat.ligand.checks import posebusters_example

    return posebusters_example


@pytest.fixture(scope="session")
def pocket_1uou(posebusters_case):
    """The 8 Å pocket of 1uou around its crystal ligand, and the ligand (extracted once, ~4 s)."""
    from digmat.ligand.molecule import ligand_atoms, read_ligand
    from digmat.ligand.pocket import extract_pocket

    protein, sdf = posebusters_case("1uou")
    ligand = read_ligand(sdf)
    heavy = ligand_atoms(ligand)
    return extract_pocket(protein, heavy.positions[heavy.numbers > 1], radius=8.0), ligand
