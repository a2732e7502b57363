"""Ligand fixtures: the PoseBusters wheel's real complexes (protein without the ligand + crystal SDF)."""

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def posebusters_case():
    """``posebusters_case("1uou")`` -> (protein PDB path, crystal ligand SDF path)."""
    pytest.importorskip("rdkit", reason="needs the ligand extra (rdkit)")
    pytest.importorskip("openmm", reason="needs the ligand extra (openmm)")
    posebusters = pytest.importorskip("posebusters", reason="needs the ligand extra (posebusters ships the complexes)")
    base = Path(posebusters.__file__).parent / "datasets" / "pdb"

    def case(name: str) -> tuple[Path, Path]:
        return base / name / f"{name}_protein_one_lig_removed.pdb", base / name / f"{name}_ligand.sdf"

    return case


@pytest.fixture(scope="session")
def pocket_1uou(posebusters_case):
    """The 8 Å pocket of 1uou around its crystal ligand, and the ligand (extracted once, ~4 s)."""
    from digmat.ligand.molecule import ligand_atoms, read_ligand
    from digmat.ligand.pocket import extract_pocket

    protein, sdf = posebusters_case("1uou")
    ligand = read_ligand(sdf)
    heavy = ligand_atoms(ligand)
    return extract_pocket(protein, heavy.positions[heavy.numbers > 1], radius=8.0), ligand
