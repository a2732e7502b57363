"""The peptide model learns a known Ramachandran distribution: data path, training, sampling,
basins, log-density normalisation, files."""

import json

import numpy as np
import pytest
import torch

pytest.importorskip("openmm", reason="needs the protein extra (openmm)")
pytest.importorskip("rdkit", reason="needs the protein extra (rdkit)")

from digmat.models import PeptideModelConfig  # noqa: E402
from digmat.protein import BASINS, MetadynamicsRun  # noqa: E402
from digmat.tasks.peptide_data import PeptideDataset, train_peptide_model  # noqa: E402
from digmat.tasks.peptide_sampling import clash_mask, sample_peptides  # noqa: E402
from digmat.train import TrainConfig  # noqa: E402

CENTRES = np.array([[-150.0, 155.0], [-75.0, 145.0], [-65.0, -40.0], [60.0, 40.0]])
TRUTH = np.array([0.5, 0.3, 0.15, 0.05])  # one centre per basin, in BASINS order


def _synthetic_run(seed: int, n: int = 6000) -> MetadynamicsRun:
    """A 'reference run' of alanine dipeptide whose torsions are a known mixture (flat bias)."""
    rng = np.random.default_rng(seed)
    labels = rng.choice(4, size=n, p=TRUTH)
    pairs = CENTRES[labels] + rng.normal(scale=12.0, size=(n, 2))
    pairs = (pairs + 180) % 360 - 180
    meta = {"sequence": "A", "seed": seed, "config": {"temperature": 300.0, "bias_factor": 6.0, "burn_in": 0.0}}
    return MetadynamicsRun(pairs[:, None, :], np.zeros(n), np.zeros((72, 72)), ["phi2", "psi2"],
                           np.zeros((0, 22, 3), np.float32), np.zeros(0, int), meta,
                           torsions=pairs, torsion_names=["phi:2", "psi:2"])


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    folder = tmp_path_factory.mktemp("refs")
    (folder / "A").mkdir()
    for seed in (0, 1):
        _synthetic_run(seed).save(folder / "A" / f"run{seed}.npz")
    dataset = PeptideDataset(folder, ["A"], samples_per_peptide=8000, seed=0)
    torch.manual_seed(0)
    model, last = train_peptide_model(
        dataset, tmp_path_factory.mktemp("run"),
        config=PeptideModelConfig(width=64, layers=2, heads=4, ffn=128),
        train_config=TrainConfig(steps=700, batch_size=128, lr=2e-3, warmup_steps=50, ema_decay=0.99, log_every=100,
                                 checkpoint_every=700),
        progress=False)
    return model.eval(), dataset


def test_dataset_resamples_the_weighted_runs(trained):
    _, dataset = trained
    assert len(dataset) == 8000 and dataset.sequences == ["A"]
    p, state, temp = dataset[0]
    assert p == 0 and state.shape == (2,) and temp == 300.0
    assert dataset.effective_samples[0] == pytest.approx(12000)


def test_samples_reproduce_the_basin_populations(trained):
    model, _ = trained
    ensemble = sample_peptides(model, "A", 600, temperature=300.0, seed=0, steps=100)
    (table,) = ensemble.basin_tables()
    assert table.names == BASINS
    np.testing.assert_allclose(table.populations, TRUTH, atol=0.07)
    assert ensemble.clash_rate() == 0 and ensemble.meta["raw_clash_rate"] < 0.05
    with pytest.raises(ValueError, match="outside what this model was trained on"):
        sample_peptides(model, "A", 4, temperature=400.0)
    with pytest.warns(UserWarning, match="G, V of GV were not in the model's training data"):
        with pytest.warns(UserWarning, match="longer than every training peptide"):
            sample_peptides(model, "GV", 2, steps=5)


def test_log_density_is_normalised_on_the_torus(trained):
    model, _ = trained
    from digmat.tasks.peptide_sampling import PeptideEnsemble
    from digmat.systems.peptide import PeptideSystem

    system = PeptideSystem.from_sequence("A")
    grid = torch.linspace(0, 2 * np.pi, 25)[:-1]
    states = torch.cartesian_prod(grid, grid)
    ensemble = PeptideEnsemble(system, 300.0, states, 0.0, 0)
    log_q = ensemble.log_density(model, steps=96)
    total = np.exp(log_q).sum() * (2 * np.pi / 24) ** 2
    assert total == pytest.approx(1.0, abs=0.04)  # measured 0.988 on 32² with Heun 128 (1.06 with 32 steps)


def test_clash_mask_flags_overlapping_atoms():
    from digmat.protein import build_peptide

    atoms = build_peptide("A")
    ok = clash_mask(atoms, atoms.positions[None])
    squashed = atoms.positions.copy()
    squashed[0] = squashed[-1] + 0.3  # ACE C onto an NME hydrogen
    assert not ok[0] and clash_mask(atoms, squashed[None])[0]


@pytest.fixture(scope="module")
def untrained():
    """An untrained model: eps vanishes at every noise level, so it samples torsions uniformly."""
    from digmat.models import PeptideScoreModel

    torch.manual_seed(0)
    return PeptideScoreModel(PeptideModelConfig(width=16, layers=1, heads=2, ffn=32)).eval()


def test_clashing_samples_are_redrawn(monkeypatch, untrained):
    """An untrained model samples torsions uniformly, so lysine's side chain often clashes:
    with ``clashes="reject"`` the ensemble has none, its first draw's clash-free samples come
    first and in order, and the raw clash rate is what :func:`clash_mask` finds on the
    decoded Atoms."""
    from digmat.tasks import peptide_sampling

    model = untrained
    raw = sample_peptides(model, "K", 64, seed=3, steps=5, clashes="keep")
    mask = clash_mask(raw.system.template, raw.positions())  # via ASE Atoms, not the torch decoder
    assert 0.1 < mask.mean() < 0.9 and "raw_clash_rate" not in raw.meta
    kept = sample_peptides(model, "K", 64, seed=3, steps=5, clashes="reject")
    assert len(kept.states) == 64 and kept.clash_rate() == 0
    torch.testing.assert_close(kept.states[: int((~mask).sum())], raw.states[torch.as_tensor(~mask)])
    assert kept.meta["draws"] > 64 and 0.1 < kept.meta["raw_clash_rate"] < 0.9
    clean = raw.without_clashes("reject")
    assert len(clean.states) == (~mask).sum() and clean.meta["raw_clash_rate"] == pytest.approx(mask.mean())
    assert clean.clash_rate() == 0 and raw.clash_rate() == pytest.approx(mask.mean())
    monkeypatch.setattr(peptide_sampling, "clashing_states", lambda system, states: np.ones(len(states), bool))
    with pytest.raises(RuntimeError, match="0 of 80 samples of K were free of clashes"):
        sample_peptides(model, "K", 4, seed=3, steps=2)
    with pytest.raises(ValueError, match="clashes must be one of"):
        sample_peptides(model, "K", 4, clashes="fix")


def test_clashing_samples_are_relaxed_by_small_torsion_moves(untrained):
    """Relaxation resolves most clashes even of uniformly drawn lysine states (the model's
    near misses are easier), leaves clash-free states untouched, moves only torsions, and the
    independent ASE-side :func:`clash_mask` agrees on which relaxed states are clash-free."""
    from digmat.systems.peptide import PeptideSystem
    from digmat.tasks.peptide_sampling import clashing_states, relax_clashes

    system = PeptideSystem.from_sequence("K")
    states = torch.rand(96, system.dim, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 2 * np.pi
    bad = clashing_states(system, states)
    assert 0.1 < bad.mean() < 0.9
    moved = relax_clashes(system, states[torch.as_tensor(bad)])
    pos = np.stack([a.positions for a in system.to_atoms(moved)])
    still = clash_mask(system.template, pos)
    assert still.mean() < 0.2 and np.array_equal(still, clashing_states(system, moved))
    step = torch.remainder(moved - states[torch.as_tensor(bad)] + np.pi, 2 * np.pi) - np.pi
    assert step.abs().max() < np.radians(90) and step.abs().mean() < np.radians(15)
    roomy = states[system.clearance(states).min(dim=-1).values >= 0.65]  # every pair beyond the margin
    assert len(roomy) > 10
    torch.testing.assert_close(relax_clashes(system, roomy), roomy)
    ensemble = sample_peptides(untrained, "K", 32, seed=1, steps=3)
    assert len(ensemble.states) == 32 and ensemble.clash_rate() == 0 and ensemble.meta["relaxed"] > 0
    assert ensemble.meta["clashes"] == "relax" and ensemble.meta["draws"] >= 32


def test_ensemble_files(trained, tmp_path):
    from ase.io import read

    model, _ = trained
    ensemble = sample_peptides(model, "A", 8, seed=1, steps=20)
    files = ensemble.write(tmp_path)
    assert len(read(files["pdb"], index=":")) == 8
    assert len(read(files["extxyz"], index=":")) == 8
    assert files["plot"].stat().st_size > 1000
    summary = ensemble.summary()
    json.dumps(summary)
    assert set(summary["basins"]["2"]) == set(BASINS)


def test_steric_input_interpolates_the_profiles_and_round_trips(tmp_path):
    """The model's clearance input is the profile at the current angle (periodic, linear)."""
    import math

    from digmat.checkpoint import load_checkpoint, save_checkpoint
    from digmat.models import PeptideScoreModel
    from digmat.systems.peptide import PeptideSystem

    system = PeptideSystem.from_sequence("S")
    model = PeptideScoreModel(PeptideModelConfig(width=32, layers=1, heads=4, ffn=64, steric_points=12,
                                                 steric_current=True)).double()
    profiles = torch.as_tensor(system.steric_profiles(12))
    step = 2 * math.pi / 12
    at = model._clearance_at(profiles, torch.tensor([[3 * step, 11.5 * step, -0.5 * step]], dtype=torch.float64))
    np.testing.assert_allclose(at[0, 0], profiles[0, :, 3])
    np.testing.assert_allclose(at[0, 1], (profiles[1, :, 11] + profiles[1, :, 0]) / 2)
    np.testing.assert_allclose(at[0, 2], (profiles[2, :, 11] + profiles[2, :, 0]) / 2)
    x = torch.rand(3, system.dim, dtype=torch.float64) * 2 * math.pi
    t = torch.full((3,), 0.2, dtype=torch.float64)
    eps = model.eps(system, x, t, 300.0)
    save_checkpoint(tmp_path / "m.pt", kind="peptide", config=model.config.to_dict(), state_dict=model.state_dict())
    back = PeptideScoreModel.from_payload(load_checkpoint(tmp_path / "m.pt"), ema=False).double()
    torch.testing.assert_close(back.eps(system, x, t, 300.0), eps)
    assert back.config.steric_current and back.config.steric_points == 12
