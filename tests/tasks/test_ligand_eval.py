"""Ligand evaluation metrics against independent references: RDKit's symmetric aligned RMSD, and
coverage of hand-made conformer sets."""

import numpy as np
import pytest

pytest.importorskip("rdkit", reason="needs the ligand extra (rdkit)")

from digmat.ligand.pose import PoseSpace  # noqa: E402
from digmat.tasks.ligand_eval import aligned_rmsd, conformer_coverage  # noqa: E402


@pytest.fixture(scope="module")
def benzoic():
    from rdkit import Chem
    from rdkit.Chem import AllChem

    mol = Chem.AddHs(Chem.MolFromSmiles("OC(=O)c1ccc(CCN)cc1"))
    AllChem.EmbedMolecule(mol, randomSeed=3)
    return mol, PoseSpace.from_mol(mol)


def _random_rotation(rng):
    q, r = np.linalg.qr(rng.standard_normal((3, 3)))
    q = q * np.sign(np.diag(r))
    return q if np.linalg.det(q) > 0 else -q


def test_aligned_rmsd_equals_rdkit_best_rms(benzoic):
    from rdkit import Chem
    from rdkit.Chem import rdMolAlign

    mol, space = benzoic
    rng = np.random.default_rng(0)
    x0 = mol.GetConformer().GetPositions()
    poses = np.array([(x0 + 0.3 * rng.standard_normal(x0.shape)) @ _random_rotation(rng).T + rng.normal(0, 5, 3)
                      for _ in range(4)])
    ours = aligned_rmsd(space, poses, x0[None])[:, 0]

    def heavy_mol(x):
        m = Chem.Mol(mol)
        conf = m.GetConformer()
        for i, p in enumerate(x):
            conf.SetAtomPosition(i, p.tolist())
        return Chem.RemoveHs(m)

    ref = heavy_mol(x0)
    expected = [rdMolAlign.GetBestRMS(heavy_mol(p), ref) for p in poses]
    np.testing.assert_allclose(ours, expected, atol=1e-6)
    # swapping the carboxyl O atoms (an automorphism of the bare graph) costs nothing
    flipped = x0.copy()
    flipped[[0, 2]] = x0[[2, 0]]
    assert aligned_rmsd(space, flipped[None], x0[None])[0, 0] < 1e-6
    assert np.sqrt(((flipped - x0)[space.heavy] ** 2).sum(1).mean()) > 0.3


def test_conformer_coverage_of_hand_made_sets(benzoic):
    mol, space = benzoic
    x0 = mol.GetConformer().GetPositions()
    rng = np.random.default_rng(1)
    reference = np.array([x0 + 0.02 * rng.standard_normal(x0.shape) for _ in range(4)])
    reference[2:] += rng.normal(0, 1.5, (2, *x0.shape))  # two conformers far from x0
    cov, mat = conformer_coverage(space, reference, x0[None], threshold=0.75)
    assert cov == 0.5
    assert 0 < mat < 3
    cov_all, mat_all = conformer_coverage(space, reference, reference, threshold=0.75)
    assert cov_all == 1.0 and mat_all < 1e-6
