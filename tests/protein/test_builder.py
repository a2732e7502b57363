"""The peptide builder: names, composition, L chirality, force-field coverage, PDB input."""

import numpy as np
import pytest

from digmat.protein import AMINO_ACIDS, check_sequence

pytest.importorskip("openmm", reason="needs the protein extra (openmm)")
pytest.importorskip("rdkit", reason="needs the protein extra (rdkit)")

from digmat.protein import build_peptide, create_system, read_peptide, write_pdb  # noqa: E402


@pytest.mark.parametrize("bad", ["", "   ", "AXA", "A1", "B"])
def test_bad_sequences_are_named(bad):
    with pytest.raises(ValueError, match="sequence is empty|not one of the 20"):
        check_sequence(bad)


def test_sequence_is_normalised():
    assert check_sequence(" gav ") == "GAV"


def test_alanine_dipeptide_composition_and_names(alanine_dipeptide):
    atoms = alanine_dipeptide
    # C6H12N2O2: ACE (C2 O H3) + ALA (C3 N O H5) + NME (C N H4)
    assert atoms.get_chemical_formula(mode="hill") == "C6H12N2O2"
    residues = list(dict.fromkeys(zip(atoms.arrays["residuenumbers"], atoms.arrays["residuenames"])))
    assert [r for _, r in residues] == ["ACE", "ALA", "NME"]
    names = set(atoms.arrays["atomtypes"][atoms.arrays["residuenames"] == "ALA"])
    assert {"N", "H", "CA", "HA", "CB", "HB1", "HB2", "HB3", "C", "O"} == names
    assert not atoms.pbc.any()


def test_every_standard_amino_acid_is_built_and_parametrised():
    seq = "".join(sorted(AMINO_ACIDS))
    atoms = build_peptide(seq, minimize=False)
    residues = list(dict.fromkeys(zip(atoms.arrays["residuenumbers"], atoms.arrays["residuenames"])))
    assert [r for _, r in residues][1:-1] == [AMINO_ACIDS[c] for c in seq]
    system = create_system(atoms)
    assert system.getNumParticles() == len(atoms)
    # The names define the bonds (OpenMM's templates): every one must be a bond of the embedded geometry.
    bonds = next(f for f in (system.getForce(i) for i in range(system.getNumForces()))
                 if type(f).__name__ == "HarmonicBondForce")
    for k in range(bonds.getNumBonds()):
        i, j, r0, _ = bonds.getBondParameters(k)
        assert abs(np.linalg.norm(atoms.positions[i] - atoms.positions[j]) - 10 * r0._value) < 0.25, (i, j)  # a misnamed atom is >1 Å off
    # Net charge at pH 7: Asp, Glu −1 each; Lys, Arg +1 each; His neutral.
    force = next(f for f in (system.getForce(i) for i in range(system.getNumForces()))
                 if type(f).__name__ == "NonbondedForce")
    charge = sum(force.getParticleParameters(i)[0]._value for i in range(len(atoms)))
    assert charge == pytest.approx(0.0, abs=1e-4)


@pytest.mark.parametrize("seq, expected", [("A", "S"), ("C", "R"), ("S", "S"), ("I", "S"), ("T", "S")])
def test_alpha_carbons_are_l_by_rdkit_cip_from_3d(seq, expected, tmp_path):
    """L-amino acids: S at CA except cysteine (R, by the CIP priority of S); RDKit reads the 3-D file."""
    from rdkit import Chem

    atoms = build_peptide(seq)
    write_pdb(tmp_path / "p.pdb", atoms)
    mol = Chem.MolFromPDBFile(str(tmp_path / "p.pdb"), removeHs=False)
    Chem.AssignStereochemistryFrom3D(mol)
    ca = [a for a in mol.GetAtoms() if a.GetPDBResidueInfo().GetName().strip() == "CA"]
    assert [a.GetProp("_CIPCode") for a in ca] == [expected]
    if seq in "IT":  # second stereocentre: L-Ile is (2S,3S), L-Thr is (2S,3R)
        cb = next(a for a in mol.GetAtoms() if a.GetPDBResidueInfo().GetName().strip() == "CB")
        assert cb.GetProp("_CIPCode") == {"I": "S", "T": "R"}[seq]


def test_minimised_bonds_sit_at_the_force_field_lengths(alanine_dipeptide):
    system = create_system(alanine_dipeptide)
    bonds = next(system.getForce(i) for i in range(system.getNumForces())
                 if type(system.getForce(i)).__name__ == "HarmonicBondForce")
    pos = alanine_dipeptide.positions
    errors = []
    for k in range(bonds.getNumBonds()):
        i, j, r0, _ = bonds.getBondParameters(k)
        errors.append(np.linalg.norm(pos[i] - pos[j]) - 10.0 * r0._value)
    assert bonds.getNumBonds() == 21
    assert np.max(np.abs(errors)) < 0.03


def test_pdb_round_trip_and_missing_hydrogens(alanine_dipeptide, tmp_path):
    from ase.io import read

    path = tmp_path / "ala.pdb"
    write_pdb(path, [alanine_dipeptide, alanine_dipeptide])
    frames = read(path, index=":")
    assert len(frames) == 2 and len(frames[1]) == len(alanine_dipeptide)
    np.testing.assert_allclose(frames[1].positions, alanine_dipeptide.positions, atol=1e-3)
    back = read_peptide(path)
    assert list(back.arrays["atomtypes"]) == list(alanine_dipeptide.arrays["atomtypes"])
    # Heavy atoms only: the hydrogens come back with their names.
    lines = [ln for ln in path.read_text().splitlines()
             if not (ln.startswith(("ATOM", "HETATM")) and ln[76:78].strip() == "H")]
    heavy = tmp_path / "heavy.pdb"
    heavy.write_text("\n".join(lines) + "\n")
    rebuilt = read_peptide(heavy)
    assert len(rebuilt) == len(alanine_dipeptide)
    assert sorted(rebuilt.arrays["atomtypes"]) == sorted(alanine_dipeptide.arrays["atomtypes"])


def test_bad_pdb_inputs_are_one_line(tmp_path):
    with pytest.raises(ValueError, match="is not a file"):
        read_peptide(tmp_path / "missing.pdb")
    water = tmp_path / "water.pdb"
    water.write_text("HETATM    1  O   HOH A   1       0.000   0.000   0.000  1.00  0.00           O\nEND\n")
    with pytest.raises(ValueError, match="non-peptide residues \\(HOH\\)"):
        read_peptide(water)
    empty = tmp_path / "empty.pdb"
    empty.write_text("END\n")
    with pytest.raises(ValueError, match="no atoms"):
        read_peptide(empty)


def test_write_pdb_refuses_mixed_peptides(alanine_dipeptide, tmp_path):
    other = build_peptide("G", minimize=False)
    with pytest.raises(ValueError, match="same peptide"):
        write_pdb(tmp_path / "x.pdb", [alanine_dipeptide, other])
    assert not (tmp_path / "x.pdb").exists()
