"""recipes/fetch_ligand_complexes.py without the network: a structure file split into protein and ligand.

The input is a PoseBusters complex written back as one PDB text (protein, the crystal ligand as
HETATM records without bond orders, a second copy of the ligand, a water, an alternate location);
the ligand that comes out must be the crystal SDF's molecule at the crystal coordinates.
"""

import numpy as np
import pytest

pytest.importorskip("posebusters", reason="needs the ligand extra (posebusters ships the complexes)")
pytest.importorskip("openmm", reason="needs the ligand extra (openmm)")


def _hetatm_lines(mol, resname: str, chain: str, number: int) -> list[str]:
    from rdkit import Chem

    heavy = Chem.RemoveHs(mol)
    for atom in heavy.GetAtoms():
        info = Chem.AtomPDBResidueInfo(f"{atom.GetSymbol()}{atom.GetIdx() + 1:<3d}"[:4], residueName=resname,
                                       chainId=chain, residueNumber=number, isHeteroAtom=True)
        atom.SetMonomerInfo(info)
    return [line for line in Chem.MolToPDBBlock(heavy, flavor=2 | 8).splitlines() if line.startswith("HETATM")]


def _assert_crystal_ligand(sdf: bytes, crystal):
    """The written ligand is the crystal's molecule (bond orders and stereo) at its heavy atoms'
    coordinates (to 1e-3 Å); returns it."""
    from rdkit import Chem

    mol = Chem.MolFromMolBlock(sdf.decode(), removeHs=False)
    ref = Chem.RemoveHs(crystal)
    assert Chem.MolToSmiles(Chem.RemoveHs(mol)) == Chem.MolToSmiles(ref)  # bond orders and stereo
    heavy = [a.GetIdx() for a in mol.GetAtoms() if a.GetAtomicNum() > 1]
    match = ref.GetSubstructMatch(Chem.RemoveHs(mol))
    np.testing.assert_allclose(mol.GetConformer().GetPositions()[heavy],
                               ref.GetConformer().GetPositions()[list(match)], atol=1e-3)
    return mol


@pytest.fixture(scope="module")
def complex_text():
    from rdkit import Chem

    from digmat.ligand.checks import posebusters_example

    protein, sdf = posebusters_example("1uou")
    crystal = next(iter(Chem.SDMolSupplier(str(sdf), removeHs=False)))
    atoms = [line for line in protein.read_text().splitlines() if line.startswith("ATOM")]
    altloc = atoms[10][:16] + "B" + atoms[10][17:30] + "  99.000  99.000  99.000" + atoms[10][54:]
    atoms[10] = atoms[10][:16] + "A" + atoms[10][17:]
    water = "HETATM 9999  O   HOH W 501      10.000  10.000  10.000  1.00  0.00           O  "
    moved = Chem.Mol(crystal)
    conf = moved.GetConformer()
    for k in range(moved.GetNumAtoms()):
        p = conf.GetAtomPosition(k)
        conf.SetAtomPosition(k, (p.x + 30.0, p.y, p.z))
    lines = atoms[:11] + [altloc] + atoms[11:] + ["TER"] + _hetatm_lines(crystal, "LIG", "Z", 900)
    lines += _hetatm_lines(moved, "LIG", "Y", 901) + [water, "END"]
    return "\n".join(lines) + "\n", crystal, len(atoms)


def test_ligand_keeps_the_crystal_chemistry_and_pose(load_recipe, complex_text):
    from rdkit import Chem

    recipe = load_recipe("fetch_ligand_complexes")
    text, crystal, num_atoms = complex_text
    template = Chem.MolToSmiles(Chem.RemoveHs(crystal), isomericSmiles=False)
    entry = recipe.Entry("pip:none==0", ("x.pdb",), ("LIG", "Z", 900), template, "1uou written back")
    protein, block = recipe.split_complex(text, entry)
    assert protein.count("ATOM") == num_atoms and "HOH" not in protein and "LIG" not in protein
    assert "99.000" not in protein  # the alternate location B is dropped, A kept
    mol = _assert_crystal_ligand(recipe.ligand_sdf(block, template), crystal)
    assert mol.GetNumAtoms() == Chem.AddHs(Chem.RemoveHs(crystal)).GetNumAtoms()  # hydrogens placed


def test_missing_residue_and_unknown_name_are_one_line(load_recipe, complex_text, tmp_path, capsys):
    recipe = load_recipe("fetch_ligand_complexes")
    entry = recipe.Entry("pip:none==0", ("x.pdb",), ("LIG", "Q", 1), "C", "absent")
    with pytest.raises(ValueError, match="no residue LIG Q1"):
        recipe.split_complex(complex_text[0], entry)
    assert recipe.main(["9xyz", "--out", str(tmp_path)]) == 2
    assert "unknown complex 9xyz" in capsys.readouterr().err


def test_protein_and_sdf_members_make_one_structure(load_recipe):
    """An entry whose ligand ships as an SDF beside the protein (PoseBusters' test data): the SDF's
    molecule becomes residue UNL 1 without a chain, and a file whose last line has no newline does
    not swallow the next file's first atom."""
    from rdkit import Chem

    from digmat.ligand.checks import posebusters_example

    recipe = load_recipe("fetch_ligand_complexes")
    protein, sdf = posebusters_example("1of6")
    crystal = next(iter(Chem.SDMolSupplier(str(sdf), removeHs=False)))
    atoms = [line for line in protein.read_text().splitlines() if line.startswith("ATOM")]
    half = len(atoms) // 2  # the protein in two files, the first without a final newline
    text = recipe.structure_text([("\n".join(atoms[:half]).encode(), "chain_a.pdb"),
                                  ("\n".join(atoms[half:] + ["END"]).encode(), "chain_b.pdb"),
                                  (sdf.read_bytes(), "ligand.sdf")])
    template = Chem.MolToSmiles(Chem.RemoveHs(crystal), isomericSmiles=False)
    entry = recipe.Entry("pip:none==0", ("chain_a.pdb", "chain_b.pdb", "ligand.sdf"), ("UNL", " ", 1), template, "1of6")
    protein_text, block = recipe.split_complex(text, entry)
    assert sum(line.startswith("ATOM") for line in protein_text.splitlines()) == len(atoms)
    _assert_crystal_ligand(recipe.ligand_sdf(block, template), crystal)
