"""LigandSystem: pose ↔ rigid state round trip, exact geometry, features, the tied rotation clock."""

import math

import numpy as np
import pytest
import torch

pytest.importorskip("rdkit", reason="needs the ligand extra (rdkit)")

from digmat.core import RigidState  # noqa: E402
from digmat.ligand.system import LigandSystem, ligand_atom_features, pocket_atom_features, site_pocket_radius  # noqa: E402


@pytest.fixture(scope="module")
def system(pocket_1uou):
    pocket, mol = pocket_1uou
    heavy = np.array([a.GetAtomicNum() > 1 for a in mol.GetAtoms()])
    centre = mol.GetConformer().GetPositions()[heavy].mean(axis=0) + np.array([0.5, -0.3, 0.2])
    return LigandSystem(mol, pocket, centre, length_scale=3.0)


def test_crystal_pose_round_trips_through_the_state(system):
    crystal = system.mol.GetConformer().GetPositions()
    state = system.to_state(crystal)
    assert state.x.shape == (1, 3 + system.num_torsions) and state.R.shape == (1, 3, 3)
    np.testing.assert_allclose(system.positions(state)[0].numpy(), crystal, atol=1e-6)
    # the centroid entry is the offset from the site centre in units of L
    heavy = system.pose.heavy
    np.testing.assert_allclose(state.x[0, :3].numpy() * 3.0, crystal[heavy].mean(0) - system.center, atol=1e-9)


def test_any_state_is_a_chemically_exact_pose(system):
    g = torch.Generator().manual_seed(0)
    prior = system.diffusion().sample_prior(32, generator=g, dtype=torch.float64)
    x = system.positions(prior).numpy()
    ref = system.mol.GetConformer().GetPositions()
    bonds = np.array([(b.GetBeginAtomIdx(), b.GetEndAtomIdx()) for b in system.mol.GetBonds()])
    length = lambda p: np.linalg.norm(p[..., bonds[:, 0], :] - p[..., bonds[:, 1], :], axis=-1)  # noqa: E731
    np.testing.assert_allclose(length(x), np.broadcast_to(length(ref), (32, len(bonds))), atol=1e-8)
    # a round trip of random states gives the same poses back
    again = system.positions(system.to_state(x)).numpy()
    np.testing.assert_allclose(again, x, atol=1e-6)


def test_features_of_a_hand_made_molecule():
    from rdkit import Chem
    from rdkit.Chem import AllChem

    mol = Chem.AddHs(Chem.MolFromSmiles("OC(=O)c1ccncc1CN"))  # isonicotinic acid with an aminomethyl
    AllChem.EmbedMolecule(mol, randomSeed=1)
    f = ligand_atom_features(mol)
    assert f.shape == (11, 20)
    symbols = [a.GetSymbol() for a in mol.GetAtoms() if a.GetAtomicNum() > 1]
    assert f[:, 0].sum() == symbols.count("C") and f[:, 1].sum() == symbols.count("N") and f[:, 2].sum() == 2
    donor, acceptor = f[:, 18], f[:, 19]
    assert donor.sum() == 2  # the acid OH and the NH2
    assert acceptor.sum() == 3  # both O and the pyridine N (the amine carries H)
    assert f[:, 10].sum() == 6 and f[:, 9].sum() == 0  # aromatic ring atoms; no "other" element


def test_pocket_features(pocket_1uou):
    pocket, _ = pocket_1uou
    idx, f = pocket_atom_features(pocket.atoms)
    assert (pocket.atoms.numbers[idx] > 1).all() and len(idx) == (pocket.atoms.numbers > 1).sum()
    names = pocket.atoms.arrays["atomtypes"][idx]
    np.testing.assert_array_equal(f[:, 7] == 1, np.isin(names, ["N", "CA", "C", "O"]))
    backbone_n = (names == "N") & (pocket.atoms.arrays["residuenames"][idx] != "PRO")
    assert f[backbone_n, 5].all()  # backbone NH donates
    assert f[names == "O", 6].all() and not f[names == "O", 5].any()


def test_rotation_noise_is_tied_to_the_centroid_noise(system):
    d = system.diffusion()
    t = torch.tensor([0.05, 0.2, 0.35], dtype=torch.float64)
    expected = d.flat.schedule.sigma_tilde(t) * 3.0 / system.radius_of_gyration
    torch.testing.assert_close(d.rotation_sigma(t), expected)
    assert d.flat.space.has_torus and d.flat.space.num_euclidean == 3
    assert float(d.flat.space.periods(t)[3]) == pytest.approx(2 * math.pi)
    assert site_pocket_radius(6.0, 5.0, 6.0) == 6.0 + 5.0 + 8.0 + 1.0  # Vina's 8 Å cutoff dominates


def test_to_atoms_returns_new_atoms(system):
    state = system.to_state(system.mol.GetConformer().GetPositions())
    atoms = system.to_atoms(RigidState(state.x, state.R))
    assert len(atoms) == 1 and len(atoms[0]) == system.mol.GetNumAtoms()
