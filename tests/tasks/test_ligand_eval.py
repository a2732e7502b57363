"""Ligand evaluation metrics against independent references: RDKit's symmetric aligned RMSD, and
coverage of hand-made conformer sets."""

import numpy as np
import pytest

pytest.importorskip("rdkit", reason="needs the ligand extra (rdkit)")

from digmat.ligand.pose import PoseSpace  # noqa: E402
from digmat.ligand.mode_energies import ModeEnergyConfig, ModeWeights, RelaxedMode  # noqa: E402
from digmat.tasks.ligand_eval import aligned_rmsd, conformer_coverage, reweight_figures, reweighted_populations  # noqa: E402


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


def test_reweight_figures_rank_modes_by_the_calculators_population():
    """The model's third mode is the crystal's and the calculator's favourite: top-1 after reweighting."""
    def mode(k, model, pop, g, same_as=None):
        return RelaxedMode(mode=k, model_population=model, positions=np.full((2, 3), 0.5 * (k == 3)), energy=g, free_energy=g,
                           population=pop, relaxation_rmsd=0.1, converged=True, steps=5, same_as=same_as)

    weights = ModeWeights(modes=[mode(1, 0.5, 0.2, 0.8), mode(2, 0.3, 0.0, 0.9, same_as=1), mode(3, 0.1, 0.8, 0.0)],
                          temperature=300.0, calculator="gfnff", calls=123, seconds=4.56, pocket_atoms=300,
                          model_coverage=0.9, harmonic=True, reference={"free_energy": -0.4, "same_as": 3})

    class Ensemble:
        class system:
            class pose:  # plain RMSD, no symmetry: enough for two atoms
                @staticmethod
                def rmsd(a, b):
                    return np.sqrt(((np.asarray(a) - np.asarray(b)) ** 2).sum(-1).mean(-1)).reshape(1, 1)

        def reweight(self, protein, calculator, *, reference, config):
            assert protein == "protein.pdb" and calculator == "gfnff" and reference.shape == (2, 3)
            self.config = config
            return weights

    class Found:
        protein, crystal = "protein.pdb", np.zeros((2, 3))

    ensemble = Ensemble()
    out = reweight_figures(ensemble, Found(), "gfnff", np.array([5.0, 4.0, 1.2]))
    assert ensemble.config == ModeEnergyConfig() and (out["modes_relaxed"], out["starts_per_mode"]) == (5, 2)
    out = reweight_figures(ensemble, Found(), "gfnff", np.array([5.0, 4.0, 1.2]), config=ModeEnergyConfig(max_modes=3, starts_per_mode=6))
    assert ensemble.config.starts_per_mode == 6 and (out["modes_relaxed"], out["starts_per_mode"]) == (3, 6)
    assert out["top1_mode"] == 3 and out["top1_rmsd_A"] == 1.2 and out["top1_within_2A"] and out["top5_within_2A"]
    assert out["calls"] == 123 and out["crystal_free_energy_kcal_mol"] == -0.4 and out["crystal_same_as_mode"] == 3
    assert out["crystal"] is weights.reference
    assert [m["rmsd_to_crystal_A"] for m in out["modes"]] == [5.0, 4.0, 1.2]
    assert [m["relaxed_rmsd_to_crystal_A"] for m in out["modes"]] == pytest.approx([0.0, 0.0, np.sqrt(0.75)])
    assert out["top1_relaxed_rmsd_A"] == pytest.approx(np.sqrt(0.75))
    out = reweight_figures(Ensemble(), Found(), "gfnff", np.array([1.0, 4.0, 3.0]))  # crystal = mode 1, weight 0.2
    assert out["top1_mode"] == 3 and not out["top1_within_2A"] and out["top5_within_2A"]


def test_reweighted_populations_put_each_minimums_population_at_the_minimum(benzoic):
    """Three relaxed minima: mode 1's (0.3) lies on reference mode A, mode 2 reached mode 1's
    minimum (a duplicate: 0), mode 3's (0.7) lies 10 A from both reference modes, mode 4 ended
    above the harmonic window (0). Bins: A, B, near none."""
    mol, space = benzoic
    x0 = mol.GetConformer().GetPositions()

    def mode(k, pop, shift, same_as=None):
        return RelaxedMode(mode=k, model_population=0.25, positions=x0 + [shift, 0.0, 0.0], energy=0.0,
                           free_energy=0.0, population=pop, relaxation_rmsd=0.1, converged=True, steps=5, same_as=same_as)

    class Ensemble:
        weights = ModeWeights(modes=[mode(1, 0.3, 0.3), mode(2, 0.0, 0.5, same_as=1), mode(3, 0.7, 10.0), mode(4, 0.0, 20.0)],
                              temperature=300.0, calculator="gfnff", calls=1, seconds=1.0, pocket_atoms=10,
                              model_coverage=0.75, harmonic=True)

        class system:
            pose = space

    p = reweighted_populations(Ensemble(), np.array([x0, x0 + [20.0, 0.0, 0.0]]))
    np.testing.assert_allclose(p, [0.3, 0.0, 0.7], atol=1e-12)
    np.testing.assert_allclose(reweighted_populations(Ensemble(), np.array([x0, x0 + [9.0, 0.0, 0.0]])), [0.3, 0.7, 0.0])
    unweighed = Ensemble()
    unweighed.weights = None
    with pytest.raises(ValueError, match="not been weighed"):
        reweighted_populations(unweighed, x0[None])


def test_reference_modes_read_the_same_from_plain_and_gzipped_sdf(benzoic, tmp_path):
    import gzip

    from rdkit import Chem

    from digmat.tasks.ligand_eval import read_reference_modes

    buffer = []
    for k, shift in enumerate((0.0, 5.0)):
        mol = Chem.Mol(benzoic[0])
        conf = mol.GetConformer()
        for i in range(mol.GetNumAtoms()):
            p = conf.GetAtomPosition(i)
            conf.SetAtomPosition(i, (p.x + shift, p.y, p.z))
        mol.SetProp("population", f"{0.7 - 0.4 * k:.4f}")
        buffer.append(Chem.MolToMolBlock(mol) + ">  <population>\n" + mol.GetProp("population") + "\n\n$$$$\n")
    text = "".join(buffer).encode()
    (tmp_path / "plain").mkdir()
    (tmp_path / "plain" / "modes.sdf").write_bytes(text)
    (tmp_path / "packed").mkdir()
    (tmp_path / "packed" / "modes.sdf.gz").write_bytes(gzip.compress(text))
    x, pops = read_reference_modes(tmp_path / "plain")
    y, qops = read_reference_modes(tmp_path / "packed")
    np.testing.assert_array_equal(x, y)
    np.testing.assert_allclose(pops, [0.7, 0.3])
    np.testing.assert_allclose(qops, [0.7, 0.3])
    np.testing.assert_allclose(x[1] - x[0], np.broadcast_to([5.0, 0.0, 0.0], x[0].shape), atol=1e-4)
    with pytest.raises(FileNotFoundError, match="no modes.sdf"):
        read_reference_modes(tmp_path)


def test_importance_figures_refuse_refined_or_minimised_poses():
    """Importance weights w ∝ exp(−E/k_BT)/p_model hold for the model's raw samples only."""
    from digmat.tasks.ligand_eval import importance_figures
    from digmat.tasks.ligand_sampling import PoseEnsemble

    blank = dict(system=None, positions=np.zeros((2, 3, 3)), energy=np.zeros(2), vina_score=np.zeros(2),
                 in_box=np.ones(2, bool), batch=np.zeros(2, int), box_radius=6.0, seconds=0.0)
    for moved in ({"refinement": {"steps": 10}}, {"minimization": {"iterations": 10}}):
        with pytest.raises(ValueError, match="raw samples"):
            importance_figures(None, PoseEnsemble(**blank, **moved))
