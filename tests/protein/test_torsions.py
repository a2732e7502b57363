"""Dihedral angles against ASE, exact dihedral setting, and φ/ψ of hand-made conformations."""

import numpy as np
import pytest

from digmat.protein import dihedral_angles

pytest.importorskip("openmm", reason="needs the protein extra (openmm)")
pytest.importorskip("rdkit", reason="needs the protein extra (rdkit)")

from digmat.protein import backbone_dihedrals, phi_psi, set_dihedrals  # noqa: E402
from digmat.protein.torsions import bond_graph  # noqa: E402


def test_dihedral_angles_match_ase(alanine_dipeptide):
    rng = np.random.default_rng(0)
    quads = np.array([rng.choice(len(alanine_dipeptide), 4, replace=False) for _ in range(30)])
    ours = np.degrees(dihedral_angles(alanine_dipeptide.positions, quads)) % 360
    theirs = np.array([alanine_dipeptide.get_dihedral(*q) for q in quads])
    np.testing.assert_allclose(ours, theirs, atol=1e-8)


def test_dihedral_angles_batch_over_frames(alanine_dipeptide):
    frames = np.stack([alanine_dipeptide.positions, alanine_dipeptide.positions[::-1]])
    quads = np.array([[0, 1, 2, 3], [4, 6, 8, 10]])
    batch = dihedral_angles(frames, quads)
    assert batch.shape == (2, 2)
    np.testing.assert_allclose(batch[1], dihedral_angles(frames[1], quads))


def test_backbone_dihedrals_of_alanine_dipeptide(alanine_dipeptide):
    names = alanine_dipeptide.arrays["atomtypes"]
    residues = alanine_dipeptide.arrays["residuenames"]
    label = [f"{residues[i]}:{names[i]}" for i in range(len(names))]
    ds = backbone_dihedrals(alanine_dipeptide)
    assert [(d.name, d.residue) for d in ds] == [("phi", 2), ("psi", 2)]
    assert [label[i] for i in ds[0].indices] == ["ACE:C", "ALA:N", "ALA:CA", "ALA:C"]
    assert [label[i] for i in ds[1].indices] == ["ALA:N", "ALA:CA", "ALA:C", "NME:N"]


@pytest.mark.parametrize("target", [(-83, 73), (-150, 155), (-75, 145), (-65, -40), (60, 40), (70, -70), (180, 180)])
def test_set_dihedrals_reaches_targets_and_keeps_bonds(alanine_dipeptide, target):
    ds = backbone_dihedrals(alanine_dipeptide)
    out = set_dihedrals(alanine_dipeptide, ds, target)
    got = phi_psi(out)[0]
    np.testing.assert_allclose(((got - np.array(target) + 180) % 360) - 180, 0, atol=1e-8)
    neighbours = bond_graph(alanine_dipeptide)
    for i, nbrs in enumerate(neighbours):
        for j in nbrs:
            assert out.get_distance(i, j) == pytest.approx(alanine_dipeptide.get_distance(i, j), abs=1e-10)
    assert alanine_dipeptide.positions is not out.positions
    np.testing.assert_array_equal(phi_psi(alanine_dipeptide), phi_psi(alanine_dipeptide.copy()))


def test_tripeptide_has_three_phi_psi_pairs():
    from digmat.protein import build_peptide

    atoms = build_peptide("GAV", minimize=False)
    assert phi_psi(atoms).shape == (3, 2)
    frames = np.stack([atoms.positions] * 4)
    assert phi_psi(atoms, frames).shape == (4, 3, 2)


def test_ring_bonds_cannot_be_set():
    from digmat.protein import build_peptide
    from digmat.protein.torsions import Dihedral, moving_side

    atoms = build_peptide("P", minimize=False)
    names = list(atoms.arrays["atomtypes"])
    n, ca = names.index("N", 6), names.index("CA")
    with pytest.raises(ValueError, match="in a ring"):
        moving_side(bond_graph(atoms), n, ca)
    assert isinstance(backbone_dihedrals(atoms)[0], Dihedral)


@pytest.mark.parametrize("seq, expected", [
    ("A", ["phi C-N-CA-C", "psi N-CA-C-N"]),
    ("P", ["psi N-CA-C-N"]),  # proline's φ is in its ring
    ("V", ["phi C-N-CA-C", "psi N-CA-C-N", "chi1 N-CA-CB-CG1"]),
    ("T", ["phi C-N-CA-C", "psi N-CA-C-N", "chi1 N-CA-CB-OG1"]),
    ("N", ["phi C-N-CA-C", "psi N-CA-C-N", "chi1 N-CA-CB-CG", "chi2 CA-CB-CG-OD1"]),
    ("H", ["phi C-N-CA-C", "psi N-CA-C-N", "chi1 N-CA-CB-CG", "chi2 CA-CB-CG-ND1"]),
    ("K", ["phi C-N-CA-C", "psi N-CA-C-N", "chi1 N-CA-CB-CG", "chi2 CA-CB-CG-CD", "chi3 CB-CG-CD-CE",
           "chi4 CG-CD-CE-NZ"]),
    ("S", ["phi C-N-CA-C", "psi N-CA-C-N", "chi1 N-CA-CB-OG"]),
])
def test_state_torsions_follow_iupac_chi(seq, expected):
    from digmat.protein import build_peptide
    from digmat.protein.torsions import state_torsions

    atoms = build_peptide(seq, minimize=False)
    names = atoms.arrays["atomtypes"]
    got = [f"{d.name} {'-'.join(names[i] for i in d.indices)}" for d in state_torsions(atoms)]
    assert got == expected


def test_setting_every_state_torsion_keeps_the_geometry():
    from digmat.protein import build_peptide
    from digmat.protein.torsions import state_torsions

    atoms = build_peptide("K", minimize=False)
    ds = state_torsions(atoms)
    target = np.random.default_rng(0).uniform(-180, 180, len(ds))
    out = set_dihedrals(atoms, ds, target)
    got = np.degrees(dihedral_angles(out.positions, np.array([d.indices for d in ds])))
    np.testing.assert_allclose(((got - target + 180) % 360) - 180, 0, atol=1e-8)
    for i, nbrs in enumerate(bond_graph(atoms)):
        for j in nbrs:
            for k in bond_graph(atoms)[j]:
                if k != i:
                    assert out.get_angle(i, j, k) == pytest.approx(atoms.get_angle(i, j, k), abs=1e-8)
