"""Pose space: exact geometry under any pose, inverse coordinates, symmetric RMSD."""

import numpy as np
import pytest
import torch

Chem = pytest.importorskip("rdkit.Chem", reason="needs the ligand extra (rdkit)")

from rdkit.Chem import AllChem  # noqa: E402

from digmat.ligand.molecule import protonate, read_ligand  # noqa: E402
from digmat.core.so3 import random_rotations  # noqa: E402
from digmat.ligand.pose import PoseSpace  # noqa: E402
from digmat.torsions import dihedral_angles  # noqa: E402


def _embedded(smiles: str):
    mol = protonate(Chem.MolFromSmiles(smiles))
    AllChem.EmbedMolecule(mol, randomSeed=7)
    return mol


def _random_poses(space, num, seed=0):
    g = torch.Generator().manual_seed(seed)
    tau = (torch.rand(num, space.num_torsions, generator=g, dtype=torch.float64) * 2 - 1) * np.pi
    return torch.randn(num, 3, generator=g, dtype=torch.float64) * 5, random_rotations(num, g, dtype=torch.float64), tau


def test_rotatable_bonds_exclude_amides_and_h_rotors():
    assert PoseSpace.from_mol(_embedded("CC(=O)NC")).num_torsions == 0  # amide C-N, methyls
    assert PoseSpace.from_mol(_embedded("CCO")).num_torsions == 0  # only H moves
    assert PoseSpace.from_mol(_embedded("CCCC")).num_torsions == 1
    assert PoseSpace.from_mol(_embedded("c1ccccc1Cc1ccccc1")).num_torsions == 2
    assert PoseSpace.from_mol(_embedded("CC#CC")).num_torsions == 0  # linear
    with pytest.raises(ValueError, match="explicit hydrogens"):
        mol = Chem.MolFromSmiles("CCCC")
        AllChem.EmbedMolecule(mol, randomSeed=1)
        PoseSpace.from_mol(mol)


def test_poses_are_chemically_exact_and_invertible(posebusters_case):
    mol = read_ligand(posebusters_case("1s3v")[1])
    space = PoseSpace.from_mol(mol)
    assert space.num_torsions == 6
    x0 = mol.GetConformer().GetPositions()
    t, rot, tau = space.coordinates(x0)
    assert np.allclose(space.positions(t, rot, tau)[0].numpy(), x0, atol=1e-10)
    t, rot, tau = _random_poses(space, 32)
    x = space.positions(t, rot, tau).numpy()
    # every interatomic distance within a rigid unit: bonds and angles (1-3 distances) exactly the template's
    dist = Chem.GetDistanceMatrix(mol)
    pairs = np.argwhere((dist > 0) & (dist <= 2))
    d0 = np.linalg.norm(x0[pairs[:, 0]] - x0[pairs[:, 1]], axis=-1)
    d = np.linalg.norm(x[:, pairs[:, 0]] - x[:, pairs[:, 1]], axis=-1)
    assert np.abs(d - d0).max() < 1e-10
    assert np.allclose(np.angle(np.exp(1j * (dihedral_angles(x, space.torsions) - tau.numpy()))), 0, atol=1e-10)
    assert np.allclose(x[:, space.heavy].mean(1), t.numpy(), atol=1e-10)
    t2, rot2, tau2 = space.coordinates(x)
    assert torch.allclose(t2, t, atol=1e-10) and torch.allclose(rot2, rot, atol=1e-10)
    # L stays L: the CIP labels of the sampled poses are the crystal's
    ref = Chem.FindMolChiralCenters(mol, useLegacyImplementation=False)
    assert ref
    for pose in x[:4]:
        probe = Chem.Mol(mol)
        for i, p in enumerate(pose):
            probe.GetConformer().SetAtomPosition(i, p.tolist())
        Chem.AssignStereochemistryFrom3D(probe)
        assert Chem.FindMolChiralCenters(probe, useLegacyImplementation=False) == ref


def test_symmetric_rmsd():
    space = PoseSpace.from_mol(_embedded("CC(=O)O"))  # acetate: the two O are equivalent
    x = space.template
    o = [i for i, s in enumerate(space.symbols) if s == "O"]
    swapped = x.copy()
    swapped[o] = x[o[::-1]]
    assert space.rmsd(x, swapped)[0, 0] == pytest.approx(0.0, abs=1e-12)
    naive = np.sqrt(((x[space.heavy] - swapped[space.heavy]) ** 2).sum(-1).mean())
    assert naive > 0.5
    shifted = x + np.array([1.0, 0.0, 0.0])
    assert space.rmsd(x, shifted)[0, 0] == pytest.approx(1.0)  # no superposition: a pose RMSD
