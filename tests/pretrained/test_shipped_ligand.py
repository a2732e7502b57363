"""The shipped ligand model: card, loader, and poses of a training complex against its crystal pose."""

import numpy as np
import pytest

from digmat.checkpoint import SHIPPED_DIR

for _name in ("rdkit", "openmm", "vina", "meeko", "posebusters"):
    pytest.importorskip(_name, reason="needs the ligand extra")


@pytest.fixture(scope="module")
def model():
    from digmat import load_model

    return load_model("ligand")


def test_ships_with_a_model_card(model):
    card = (SHIPPED_DIR / "ligand.md").read_text()
    assert model.kind == "ligand" and not model.training
    for needed in ("recipes/train_ligand.py", "recipes/reference_ligands.py", "recipes/bench_ligand.py", "held out",
                   "PoseBusters"):
        assert needed in card
    trained = set(model.config.training_complexes)
    assert {"1uou", "1s3v", "1of6"} <= trained and "1ia1" not in trained  # the PoseBusters four, one held out
    assert all(name in card for name in trained)


def test_poses_in_1of6_gather_at_the_crystal_pose(model):
    """1of6 (tyrosine, a training complex): a third of the poses lie within 2 Å of the crystal pose
    (independent reference); random poses in the same 6 Å box almost never do (< 1 %)."""
    from digmat.tasks.ligand_data import load_complex
    from digmat.tasks.ligand_sampling import sample_poses

    found = load_complex("1of6", model)
    ens = sample_poses(model, found.system, 32, box_radius=found.box_radius, steps=100, seed=0)
    near = found.system.pose.rmsd(ens.positions, found.crystal)[:, 0] < 2.0
    assert near.mean() >= 0.15
    assert ens.in_box.mean() >= 0.9
    assert np.isfinite(ens.energy).all()


@pytest.mark.slow  # ~40-90 s: PoseBusters' internal-energy check embeds and relaxes 50 conformers
def test_quenched_poses_in_1of6_pass_posebusters(model):
    """The shipped model's poses of 1of6, quenched to their local minima, pass PoseBusters' checks
    (the independent judge) far more often than the raw samples do (measured on 64 poses:
    0.95 against 0.38)."""
    from digmat.ligand.checks import mols_at, posebusters_checks
    from digmat.tasks.ligand_data import load_complex
    from digmat.tasks.ligand_sampling import sample_poses

    found = load_complex("1of6", model)
    ens = sample_poses(model, found.system, 12, box_radius=found.box_radius, steps=100, seed=1, minimize_steps=300)
    passed = [c["all"] for c in posebusters_checks(mols_at(found.system.mol, ens.positions), found.protein)]
    assert np.mean(passed) >= 0.75
    near = found.system.pose.rmsd(ens.positions, found.crystal)[:, 0] < 2.0
    assert near.mean() >= 0.25
