"""Pockets: the right residues, the file's heavy atoms, caps on cut bonds, charges as ff14SB's."""

import numpy as np
import pytest

from digmat.ligand.pocket import XH_BOND_LENGTHS, extract_pocket, read_protein, residue_charge


def _file_heavy_atoms(path):
    from openmm import app, unit

    pdb = app.PDBFile(str(path))
    xyz = pdb.positions.value_in_unit(unit.angstrom)
    return [(a, np.array(xyz[a.index])) for a in pdb.topology.atoms()
            if a.element.symbol != "H" and a.residue.name != "HOH"]


def test_pocket_is_every_residue_near_the_ligand(posebusters_case, pocket_1uou):
    from digmat.ligand.molecule import ligand_atoms

    pocket, ligand = pocket_1uou
    protein, _ = posebusters_case("1uou")
    lig = ligand_atoms(ligand)
    heavy_lig = lig.positions[lig.numbers > 1]
    atoms = _file_heavy_atoms(protein)
    # brute force on the file itself
    near = {f"{a.residue.chain.id}:{a.residue.name}{a.residue.id}" for a, x in atoms
            if np.linalg.norm(heavy_lig - x, axis=1).min() <= 8.0}
    assert set(pocket.residues) == near and len(near) > 20
    # every heavy atom of those residues, unmoved, and nothing else heavy
    expected = np.array([x for a, x in atoms if f"{a.residue.chain.id}:{a.residue.name}{a.residue.id}" in near])
    got = pocket.atoms.positions[pocket.atoms.numbers > 1]
    assert len(got) == len(expected)
    assert np.allclose(np.sort(got, axis=0), np.sort(expected, axis=0), atol=1e-3)


def test_caps_close_every_cut_bond(posebusters_case, pocket_1uou):
    pocket, _ = pocket_1uou
    atoms = pocket.atoms
    caps = np.flatnonzero(atoms.arrays["atomtypes"] == "HCAP")
    assert len(caps) == pocket.n_caps > 0
    heavy = np.flatnonzero(atoms.numbers > 1)
    protein_heavy = np.array([x for _, x in _file_heavy_atoms(posebusters_case("1uou")[0])])
    for i in caps:
        d = np.linalg.norm(atoms.positions[heavy] - atoms.positions[i], axis=1)
        owner = heavy[np.argmin(d)]
        assert d.min() == pytest.approx(XH_BOND_LENGTHS[atoms[owner].symbol], abs=1e-6)
        # the cap points at the atom that was cut away: a protein atom ~1.3-1.5 Å from the owner, on the line
        direction = (atoms.positions[i] - atoms.positions[owner]) / d.min()
        r = np.linalg.norm(protein_heavy - atoms.positions[owner], axis=1)
        bonded = protein_heavy[(r > 0.1) & (r < 1.9)]
        cos = [(b - atoms.positions[owner]) @ direction / np.linalg.norm(b - atoms.positions[owner]) for b in bonded]
        assert max(cos) > 0.9999
    # every pocket H (caps included) is bonded to exactly one heavy atom at its standard length, none clashes
    from scipy.spatial.distance import cdist

    h = np.flatnonzero(atoms.numbers == 1)
    d = cdist(atoms.positions[h], atoms.positions[heavy])
    assert ((d < 1.2).sum(1) == 1).all() and np.sort(d, axis=1)[:, 1].min() > 1.5
    owner = atoms.numbers[heavy[np.argmin(d, axis=1)]]
    expected = np.array([XH_BOND_LENGTHS[s] for s in np.array(atoms.get_chemical_symbols())[heavy[np.argmin(d, axis=1)]]])
    assert np.allclose(d.min(1), expected, atol=1e-6) and set(owner) <= {6, 7, 8, 16}


def test_formal_charges_equal_ff14sb_residue_charges(posebusters_case):
    """Each residue's formal charge as the rounded sum of amber14 partial charges (whole protein)."""
    from openmm import app

    protein, _ = posebusters_case("1s3v")
    topology, positions = read_protein(protein)
    modeller = app.Modeller(topology, positions)
    forcefield = app.ForceField("amber14-all.xml")
    modeller.addHydrogens(forcefield, pH=7.0)
    system = forcefield.createSystem(modeller.topology)
    nonbonded = next(f for f in system.getForces() if f.__class__.__name__ == "NonbondedForce")
    charges = np.array([nonbonded.getParticleParameters(i)[0]._value for i in range(system.getNumParticles())])
    disulfide = {a.residue.index for a, b in modeller.topology.bonds() if a.name == b.name == "SG"}
    disulfide |= {b.residue.index for a, b in modeller.topology.bonds() if a.name == b.name == "SG"}
    kinds = set()
    for residue in modeller.topology.residues():
        total = sum(charges[a.index] for a in residue.atoms())
        assert residue_charge(residue, residue.index in disulfide) == round(total), residue
        kinds.add((residue.name, round(total)))
    assert {("ASP", -1), ("LYS", 1), ("ARG", 1)} <= kinds


def test_pocket_from_a_box_centre_and_errors(posebusters_case, pocket_1uou):
    protein, _ = posebusters_case("1uou")
    pocket, _ = pocket_1uou
    box = extract_pocket(protein, pocket.center, radius=6.0)
    assert box.center == pytest.approx(pocket.center) and set(box.residues) < set(pocket.residues)
    with pytest.raises(ValueError, match="no protein atom within 8 Å.*outside the protein"):
        extract_pocket(protein, pocket.center + 200.0)
    with pytest.raises(ValueError, match="finite centre"):
        extract_pocket(protein, [0.0, np.nan, 0.0])
    with pytest.raises(ValueError, match="radius must be > 0"):
        extract_pocket(protein, pocket.center, radius=0)


def test_unreadable_proteins_are_one_line(tmp_path):
    pytest.importorskip("openmm", reason="needs the ligand extra (openmm)")
    with pytest.raises(ValueError, match="is not a file"):
        read_protein(tmp_path / "none.pdb")
    (tmp_path / "junk.pdb").write_text("ATOM      1  CA  ALA A   1      xx.000   0.000   0.000\n")
    with pytest.raises(ValueError, match="junk.pdb' is not a readable PDB file"):
        read_protein(tmp_path / "junk.pdb")
    (tmp_path / "water.pdb").write_text(
        "HETATM    1  O   HOH A   1       0.000   0.000   0.000  1.00  0.00           O\nEND\n")
    with pytest.raises(ValueError, match="holds no protein residues"):
        read_protein(tmp_path / "water.pdb")


def test_a_pocket_is_the_same_on_every_call(posebusters_case, pocket_1uou):
    """OpenMM jitters new hydrogens with Python's `random` and minimises them: seeded and on the
    Reference platform, two extractions agree exactly, and the caller's random stream is untouched."""
    import random

    from digmat.ligand.molecule import ligand_atoms, read_ligand
    from digmat.ligand.pocket import extract_pocket

    protein, sdf = posebusters_case("1uou")
    heavy = ligand_atoms(read_ligand(sdf))
    random.seed(123)
    expected = random.random()
    random.seed(123)
    again = extract_pocket(protein, heavy.positions[heavy.numbers > 1], radius=8.0)
    assert random.random() == expected
    np.testing.assert_array_equal(again.atoms.positions, pocket_1uou[0].atoms.positions)


def test_side_chain_atoms_free_only_side_chains_near_the_points(pocket_1uou):
    from digmat.ligand import BACKBONE_NAMES, side_chain_atoms
    from digmat.ligand.molecule import ligand_atoms

    pocket, ligand = pocket_1uou
    lig = ligand_atoms(ligand)
    points = lig.positions[lig.numbers > 1]
    free = side_chain_atoms(pocket, points, 4.0)
    atoms = pocket.atoms
    names = atoms.arrays["atomtypes"]
    residue = np.array([f"{c}:{n}" for c, n in zip(atoms.arrays["chainids"], atoms.arrays["residuenumbers"])])
    assert len(free) > 20 and not set(names[free]) & (BACKBONE_NAMES | {"HCAP"})
    # residues with any atom within 4 Å of a ligand heavy atom (brute force), and all of their side chains
    d = np.linalg.norm(atoms.positions[:, None] - points[None], axis=-1).min(axis=1)
    near = set(residue[(d <= 4.0) & (names != "HCAP")])
    expected = np.flatnonzero(np.isin(residue, list(near)) & ~np.isin(names, list(BACKBONE_NAMES)) & (names != "HCAP"))
    assert free.tolist() == expected.tolist()
    assert side_chain_atoms(pocket, points + 100.0, 4.0).size == 0  # far away: nothing moves
    with pytest.raises(ValueError, match="radius > 0"):
        side_chain_atoms(pocket, points, 0.0)
