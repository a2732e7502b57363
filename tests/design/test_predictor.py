import json

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.build import bulk

from digmat.design.carbon24 import carbon_prototypes, find_carbon24_dir, load_carbon24
from digmat.design.predictor import BandGapPredictor, FitConfig, default_m3gnet, fit_predictor
from digmat.testing import assert_lattice_image_invariant, assert_permutation_equivariant, assert_rotation_equivariant, assert_translation_invariant

pytest.importorskip("matgl")


def tiny_predictor(seed=0, dtype=torch.float64):
    torch.manual_seed(seed)
    p = BandGapPredictor(default_m3gnet(("C",), cutoff=4.0, threebody_cutoff=3.0, width=16, blocks=2), target_mean=2.0, target_std=1.5)
    return p.to(dtype).eval()


def crystal():
    atoms = bulk("C", "diamond", a=3.6, cubic=True)
    atoms.rattle(0.08, seed=1)
    atoms.set_cell(atoms.cell.array + np.array([[0.0, 0.1, -0.05], [0.07, 0.0, 0.0], [0.0, -0.1, 0.0]]), scale_atoms=True)
    return atoms


def test_gradients_match_finite_differences_in_positions_and_lattice():
    p = tiny_predictor()
    atoms = crystal()
    pos = torch.tensor(atoms.positions, requires_grad=True)
    cell = torch.tensor(atoms.cell.array, requires_grad=True)
    gap = p.predict(pos, cell, atoms.numbers)
    g_pos, g_cell = torch.autograd.grad(gap.sum(), (pos, cell))
    assert g_pos.abs().max() > 1e-6 and g_cell.abs().max() > 1e-6
    h = 1e-5

    def f(dp=None, dc=None):
        with torch.no_grad():
            return float(p.predict(pos.detach() + (0 if dp is None else dp), cell.detach() + (0 if dc is None else dc), atoms.numbers))

    for i, k in [(0, 0), (3, 2), (7, 1)]:
        d = torch.zeros_like(pos)
        d[i, k] = h
        assert float(g_pos[i, k]) == pytest.approx((f(dp=d) - f(dp=-d)) / (2 * h), abs=1e-10, rel=1e-5)
    for i, k in [(0, 0), (1, 2), (2, 1)]:
        d = torch.zeros_like(cell)
        d[i, k] = h
        assert float(g_cell[i, k]) == pytest.approx((f(dc=d) - f(dc=-d)) / (2 * h), abs=1e-10, rel=1e-5)
    # the gradient of a homogeneous strain (positions move with the cell) is the sum of both
    strain = torch.zeros(3, 3, dtype=torch.float64, requires_grad=True)
    eye = torch.eye(3, dtype=torch.float64)
    (g_strain,) = torch.autograd.grad(p.predict(pos.detach() @ (eye + strain), cell.detach() @ (eye + strain), atoms.numbers).sum(), strain)
    expected = pos.detach().T @ g_pos + cell.detach().T @ g_cell
    torch.testing.assert_close(g_strain, expected, atol=1e-10, rtol=1e-8)


def test_prediction_is_invariant():
    p = tiny_predictor()

    def fn(atoms):
        return p.predict_atoms(atoms)[0:1].reshape(())

    for atoms in (crystal(), carbon_prototypes()[2]):
        for check in (assert_rotation_equivariant, assert_permutation_equivariant, assert_translation_invariant, assert_lattice_image_invariant):
            check(fn, atoms, kind="system_scalar", atol=1e-9, rtol=1e-8)


def test_batches_save_load_and_matgl_directory(tmp_path):
    p = tiny_predictor(dtype=torch.float32)
    structures = carbon_prototypes(rattled=1)
    together = p.predict_atoms(structures)
    alone = np.array([p.predict_atoms(a)[0] for a in structures])
    np.testing.assert_allclose(together, alone, atol=1e-5)
    p.save(tmp_path / "p.pt", metadata={"heldout_mae_ev": 1.0})
    q = BandGapPredictor.load(tmp_path / "p.pt")
    np.testing.assert_allclose(q.predict_atoms(structures), together, atol=1e-6)
    assert q.metadata["heldout_mae_ev"] == 1.0
    # a plain matgl model directory (what a user would pass), read from disk only
    p.model.save(tmp_path / "matgl_model")
    r = BandGapPredictor.load(tmp_path / "matgl_model")
    np.testing.assert_allclose(r.target_mean + r.target_std * 0 + (together - p.target_mean) / p.target_std, r.predict_atoms(structures), atol=1e-5)
    with pytest.raises(FileNotFoundError, match="not a matgl model directory"):
        BandGapPredictor.from_matgl(tmp_path)
    (tmp_path / "bad.pt").write_bytes(b"no")
    with pytest.raises(ValueError):
        BandGapPredictor.load(tmp_path / "bad.pt")


def test_bad_inputs_are_refused():
    p = tiny_predictor()
    with pytest.raises(ValueError, match="knows C, not Si"):
        p.predict_atoms(bulk("Si", "diamond", a=5.43))
    slab = crystal()
    slab.pbc = [True, True, False]
    with pytest.raises(ValueError, match="periodic"):
        p.predict_atoms(slab)
    with pytest.raises(ValueError, match="singular"):
        p.predict(torch.zeros(2, 3, dtype=torch.float64), torch.zeros(3, 3, dtype=torch.float64), [6, 6])
    with pytest.raises(ValueError, match="matgl"):
        BandGapPredictor(torch.nn.Linear(2, 2))


def test_fit_lowers_the_error():
    structures = carbon_prototypes(rattled=2, seed=1)
    gaps = np.array([6.3 if "graphite" not in a.info["id"] else 0.0 for a in structures])
    p = tiny_predictor(dtype=torch.float32)
    summary = fit_predictor(p, structures, gaps, config=FitConfig(epochs=20, batch_size=5, lr=1e-2), heldout=structures[:3], heldout_gaps=gaps[:3])
    baseline = np.abs(gaps - np.median(gaps)).mean()
    assert summary["train_mae_ev"] < 0.3 * baseline
    assert p.metadata["train_mae_ev"] == summary["train_mae_ev"] and "heldout_mae_ev" in summary


@pytest.mark.parametrize(("field", "value"), [("epochs", 0), ("batch_size", 0), ("lr", 0.0), ("time_limit", -1.0)])
def test_fit_config_is_validated(field, value):
    with pytest.raises(ValueError, match=field):
        FitConfig(**{field: value})
    with pytest.raises(ValueError, match=field):  # the keyword override form is validated too
        fit_predictor(tiny_predictor(dtype=torch.float32), carbon_prototypes()[:2], [1.0, 2.0], **{field: value})


@pytest.mark.skipif(find_carbon24_dir() is None, reason="Carbon-24 CSVs (../shared/data/carbon_24) not available")
def test_carbon24_split_loads():
    train, held = load_carbon24(split="train"), load_carbon24(split="heldout")
    assert (len(train), len(held)) == (576, 64)
    assert not {a.info["group"] for a in train} & {a.info["group"] for a in held}
    assert all(np.isfinite(a.info["tb_gap"]) and set(a.get_chemical_symbols()) == {"C"} for a in held)
    assert isinstance(json.dumps(held[0].info), str)
    assert isinstance(held[0], Atoms)
