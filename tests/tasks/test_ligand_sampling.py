"""Pose sampling and its reports: shapes, box flags, Vina energies, SDF and PNG output, and the
reference-mode populations and total variation on hand-made poses."""

import io

import numpy as np
import pytest
import torch

pytest.importorskip("rdkit", reason="needs the ligand extra (rdkit)")
pytest.importorskip("vina", reason="needs the ligand extra (vina, meeko)")
pytest.importorskip("meeko", reason="needs the ligand extra (vina, meeko)")

from digmat.models.ligand import LigandModelConfig, LigandScoreModel  # noqa: E402
from digmat.tasks.ligand_sampling import reference_populations, sample_poses, total_variation  # noqa: E402


@pytest.fixture(scope="module")
def system(pocket_1uou):
    pocket, mol = pocket_1uou
    heavy = np.array([a.GetAtomicNum() > 1 for a in mol.GetAtoms()])
    model = LigandScoreModel(LigandModelConfig(width=16, layers=1, rbf=8))
    with torch.no_grad():  # the centroid's ε = x: the score of the N(0, 1) prior, so centroids stay ~N(centre, L²)
        model.site[-1].weight.zero_()
        model.site[-1].bias.fill_(1.0)
    return model, model.system(mol, pocket, mol.GetConformer().GetPositions()[heavy].mean(axis=0))


def test_reference_populations_of_hand_made_poses(system):
    _, sys_ = system
    crystal = sys_.mol.GetConformer().GetPositions()
    rng = np.random.default_rng(0)
    near = crystal + 0.2 * rng.standard_normal((3, *crystal.shape))
    shifted = crystal + np.array([5.0, 0.0, 0.0])
    far = crystal + np.array([0.0, 12.0, 0.0])
    poses = np.concatenate([near, shifted[None] + 0.1, far[None]])
    p = reference_populations(sys_, poses, np.stack([crystal, shifted]))
    np.testing.assert_allclose(p, [0.6, 0.2, 0.2])
    assert total_variation(p, [0.6, 0.4, 0.0]) == pytest.approx(0.2)
    w = np.array([1, 1, 1, 3, 0.0])
    np.testing.assert_allclose(reference_populations(sys_, poses, np.stack([crystal, shifted]), weights=w), [0.5, 0.5, 0.0])


def test_sample_poses_reports_what_it_drew(system, tmp_path):
    from rdkit import Chem

    from digmat.ligand.energy import vina_scorer

    model, sys_ = system
    ens = sample_poses(model, sys_, 6, box_radius=4.0, steps=3, seed=5, batch_size=4)
    assert ens.positions.shape == (6, sys_.mol.GetNumAtoms(), 3)
    np.testing.assert_array_equal(ens.batch, [0, 0, 1, 1, 2, 2])  # batches of <= 4, and >= 4 batches where it can
    assert list(sample_poses(model, sys_, 16, box_radius=4.0, steps=1, batch_size=64).batch) == sorted(list(range(4)) * 4)
    wide = ens.modes().interval
    assert (wide[:, 1] > wide[:, 0]).any()  # replicates differ: the 95 % intervals have width
    centroid = ens.positions[:, sys_.pose.heavy].mean(1)
    np.testing.assert_array_equal(ens.in_box, np.linalg.norm(centroid - sys_.center, axis=1) <= 4.0)
    extent = float(np.linalg.norm(sys_.pose.template[sys_.pose.heavy], axis=1).max())
    direct = vina_scorer(sys_.pocket, sys_.mol, sys_.center, 4.0 + extent + 0.5)(torch.as_tensor(ens.positions))
    np.testing.assert_allclose(ens.energy, (direct["inter"] + direct["intra"]).numpy())
    # the same seed draws the same poses
    again = sample_poses(model, sys_, 6, box_radius=4.0, steps=3, seed=5, batch_size=4)
    np.testing.assert_array_equal(again.positions, ens.positions)
    modes = ens.modes()
    assert modes.populations.sum() == pytest.approx(1.0)
    summary = ens.summary(sys_.mol.GetConformer().GetPositions())
    assert summary["num_samples"] == 6 and 0 <= summary["fraction_within_2A_of_reference"] <= 1
    mols = [m for m in Chem.ForwardSDMolSupplier(io.BytesIO(ens.sdf("poses")), removeHs=False)]
    assert len(mols) == 6
    np.testing.assert_allclose(np.array([m.GetConformer().GetPositions() for m in mols]), ens.positions, atol=1e-4)
    assert [int(m.GetProp("mode")) for m in mols] == list(modes.labels + 1)
    reps = [m for m in Chem.ForwardSDMolSupplier(io.BytesIO(ens.sdf("modes")), removeHs=False)]
    assert len(reps) == len(modes.populations)
    png = io.BytesIO()
    ens.plot(png)
    assert png.getvalue()[:4] == b"\x89PNG"
    with pytest.raises(ValueError, match="poses"):
        ens.sdf("everything")


def test_refinement_moves_the_poses_in_the_box_and_rescores_them(system):
    from digmat.ligand.energy import vina_scorer

    model, sys_ = system
    raw = sample_poses(model, sys_, 6, box_radius=30.0, steps=3, seed=2)
    refined = sample_poses(model, sys_, 6, box_radius=30.0, steps=3, seed=2, refine_steps=6)
    assert refined.refinement["steps"] == 6 and refined.refinement["poses"] == int(raw.in_box.sum()) > 0
    assert not np.allclose(refined.positions, raw.positions)
    extent = float(np.linalg.norm(sys_.pose.template[sys_.pose.heavy], axis=1).max())
    direct = vina_scorer(sys_.pocket, sys_.mol, sys_.center, 30.0 + extent + 0.5)(torch.as_tensor(refined.positions))
    np.testing.assert_allclose(refined.energy, (direct["inter"] + direct["intra"]).numpy())
    # bonds stay exact through the Monte Carlo moves
    bonds = np.array([(b.GetBeginAtomIdx(), b.GetEndAtomIdx()) for b in sys_.mol.GetBonds()])
    length = lambda p: np.linalg.norm(p[..., bonds[:, 0], :] - p[..., bonds[:, 1], :], axis=-1)  # noqa: E731
    np.testing.assert_allclose(length(refined.positions), length(raw.positions), atol=1e-8)


def test_minimization_quenches_every_pose_and_reports_it(system):
    from digmat.ligand.energy import StericCore, vina_scorer

    model, sys_ = system
    raw = sample_poses(model, sys_, 6, box_radius=4.0, steps=3, seed=2)
    quenched = sample_poses(model, sys_, 6, box_radius=4.0, steps=3, seed=2, minimize_steps=100)
    info = quenched.minimization
    assert info["iterations"] == 100 and info["poses"] == 6 and info["moved_median_A"] > 0
    contacts = StericCore(sys_.mol, sys_.pocket.atoms)
    assert (quenched.energy + contacts(torch.as_tensor(quenched.positions)).numpy()
            < raw.energy + contacts(torch.as_tensor(raw.positions)).numpy()).all()
    extent = float(np.linalg.norm(sys_.pose.template[sys_.pose.heavy], axis=1).max())
    direct = vina_scorer(sys_.pocket, sys_.mol, sys_.center, 4.0 + extent + 0.5)(torch.as_tensor(quenched.positions))
    np.testing.assert_allclose(quenched.energy, (direct["inter"] + direct["intra"]).numpy())  # reported: Vina's
    bonds = np.array([(b.GetBeginAtomIdx(), b.GetEndAtomIdx()) for b in sys_.mol.GetBonds()])
    length = lambda p: np.linalg.norm(p[..., bonds[:, 0], :] - p[..., bonds[:, 1], :], axis=-1)  # noqa: E731
    np.testing.assert_allclose(length(quenched.positions), length(raw.positions), atol=1e-8)
    assert quenched.summary()["minimization"] == info
