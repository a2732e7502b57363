"""Ligand input: protonation rules on hand-checked molecules, files and SMILES, one-line errors."""

import numpy as np
import pytest

Chem = pytest.importorskip("rdkit.Chem", reason="needs the ligand extra (rdkit)")

from digmat.ligand.molecule import ligand_atoms, ligand_from_smiles, protonate, read_ligand  # noqa: E402


@pytest.mark.parametrize(
    "smiles, expected",
    [
        ("CC(=O)O", "CC(=O)[O-]"),  # acetic acid, pKa 4.8
        ("CCN", "CC[NH3+]"),  # ethylamine, pKa 10.7
        ("CCN(C)C", "CC[NH+](C)C"),
        ("NC(=N)N", "NC(N)=[NH2+]"),  # guanidine, pKa 13.6
        ("NCC(=O)O", "[NH3+]CC(=O)[O-]"),  # glycine zwitterion
        ("CN1CCN(C)CC1", "CN1CC[NH+](C)CC1"),  # second piperazine pKa ~4: one charge
        ("OS(=O)(=O)c1ccccc1", "O=S(=O)([O-])c1ccccc1"),
        ("Nc1ccccc1", "Nc1ccccc1"),  # aniline, pKa 4.6: neutral
        ("CC(=O)NC", "CNC(C)=O"),  # amide: neutral
        ("CNS(C)(=O)=O", "CNS(C)(=O)=O"),  # sulfonamide: neutral
        ("c1cc[nH]c1", "c1cc[nH]c1"),
        ("CC[NH3+]", "CC[NH3+]"),  # already charged: unchanged
    ],
)
def test_protonation_at_ph7(smiles, expected):
    mol = protonate(Chem.MolFromSmiles(smiles), 7.0)
    assert Chem.MolToSmiles(Chem.RemoveHs(mol)) == Chem.CanonSmiles(expected)
    assert all(a.GetAtomicNum() != 1 or a.GetDegree() == 1 for a in mol.GetAtoms())  # explicit, bonded H


def test_ph_moves_the_charges():
    acid = Chem.MolFromSmiles("CC(=O)O")
    assert Chem.GetFormalCharge(protonate(acid, 2.0)) == 0  # below the pKa: neutral
    assert Chem.GetFormalCharge(protonate(Chem.MolFromSmiles("CCN"), 12.0)) == 0


def test_read_crystal_ligand_keeps_heavy_atoms(posebusters_case):
    _, sdf = posebusters_case("1uou")
    raw = Chem.MolFromMolFile(str(sdf))
    mol = read_ligand(sdf)
    atoms = ligand_atoms(mol)
    heavy = atoms.positions[atoms.numbers > 1]
    assert np.allclose(heavy, raw.GetConformer().GetPositions(), atol=1e-4)  # same order, same coordinates
    assert atoms.info["charge"] == 1 and "amidine" in mol.GetProp("protonation")
    # the added hydrogens sit at chemical distances from their heavy atoms
    for atom in mol.GetAtoms():
        if atom.GetAtomicNum() == 1:
            j = atom.GetNeighbors()[0].GetIdx()
            assert 0.95 < np.linalg.norm(atoms.positions[atom.GetIdx()] - atoms.positions[j]) < 1.15
    assert Chem.GetFormalCharge(read_ligand(sdf, ph=None)) == 0  # as in the file


def test_smiles_ligand_sits_at_the_centre():
    mol = ligand_from_smiles("c1ccccc1C(=O)O", [10.0, -2.0, 3.5])
    atoms = ligand_atoms(mol)
    assert np.allclose(atoms.positions.mean(0), [10.0, -2.0, 3.5], atol=1e-6)
    assert atoms.info["charge"] == -1 and len(atoms) == 14


def test_bad_inputs_are_one_line(tmp_path):
    with pytest.raises(ValueError, match="is not a file"):
        read_ligand(tmp_path / "missing.sdf")
    (tmp_path / "x.pdbqt").write_text("")
    with pytest.raises(ValueError, match=".sdf, .mol or .mol2"):
        read_ligand(tmp_path / "x.pdbqt")
    with pytest.raises(ValueError, match="cannot parse the SMILES"):
        ligand_from_smiles("C1CC(", [0, 0, 0])
    with pytest.raises(ValueError, match="cannot sanitise"):
        ligand_from_smiles("C(C)(C)(C)(C)C", [0, 0, 0])  # pentavalent carbon
    with pytest.raises(ValueError, match="three finite numbers"):
        ligand_from_smiles("CCO", [0, 0])
    flat = Chem.MolFromSmiles("CCO")
    Chem.rdDepictor.Compute2DCoords(flat)
    Chem.MolToMolFile(flat, str(tmp_path / "flat.sdf"))
    with pytest.raises(ValueError, match="no 3-D coordinates"):
        read_ligand(tmp_path / "flat.sdf")
    bad = Chem.MolToMolBlock(Chem.MolFromSmiles("CC")).replace("  1  2  1", "  1  2  5")  # unknown bond type
    (tmp_path / "bad.sdf").write_text(bad + "$$$$\n")
    with pytest.raises(ValueError, match="bad.sdf"):
        read_ligand(tmp_path / "bad.sdf")
    two = tmp_path / "one.sdf"
    Chem.MolToMolFile(Chem.AddHs(Chem.MolFromSmiles("C")), str(two))
    with pytest.raises(ValueError, match="record 3 does not exist"):
        read_ligand(two, index=3)
