"""recipes/train_carbon.py: the displaced, oracle-labelled copies that teach the band-gap
predictor what disorder does to the gap."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from digmat.design import TightBindingGap
from digmat.design.carbon24 import carbon_prototypes, find_carbon24_dir


@pytest.fixture(scope="module")
def recipe(load_recipe):
    return load_recipe("train_carbon")


def test_noised_copies_carry_their_own_tight_binding_gaps_and_are_cached(recipe, tmp_path):
    structures = [a for a in carbon_prototypes() if len(a) <= 8][:3]
    cache = tmp_path / "copies.extxyz"
    copies = recipe.noised_copies(structures, [0.0, 0.2], seed=0, jobs=1, cache=cache)
    assert len(copies) == 2 * len(structures) and cache.exists()
    oracle = TightBindingGap(progress=False)
    labels = np.array([a.info["tb_gap"] for a in copies])
    np.testing.assert_allclose(labels, oracle(copies), atol=1e-9)  # each copy's own gap ...
    np.testing.assert_allclose(labels[: len(structures)], oracle(structures), atol=1e-9)  # ... = the clean one at 0 Å
    moved = np.concatenate([c.positions - s.positions for c, s in zip(copies[len(structures):], structures)])
    assert 0.1 < moved.std() < 0.3 and all(c.info["noise_A"] == 0.2 for c in copies[len(structures):])
    again = recipe.noised_copies(structures, [0.0, 0.2], seed=0, jobs=1, cache=cache)  # read back, not redrawn
    np.testing.assert_allclose(np.concatenate([a.positions for a in again]), np.concatenate([a.positions for a in copies]), atol=1e-6)  # extxyz keeps 8 decimals
    other = recipe.noised_copies(structures, [0.0, 0.2], seed=1, jobs=1, cache=cache)  # other settings: redrawn
    assert not np.allclose(other[-1].positions, copies[-1].positions)


@pytest.mark.skipif(find_carbon24_dir() is None, reason="Carbon-24 CSVs (../shared/data/carbon_24) not available")
def test_predictor_error_reports_held_out_copies_and_samples(recipe, tmp_path, capsys):
    """MAE per displacement level and per kept run, each equal to the one computed by hand."""
    import argparse
    import json

    from ase.io import write

    from digmat.design.predictor import BandGapPredictor, default_m3gnet

    pytest.importorskip("matgl")
    torch.manual_seed(0)
    predictor = BandGapPredictor(default_m3gnet(("C",), cutoff=4.0, threebody_cutoff=3.0, width=8, blocks=1), target_mean=1.0, target_std=2.0)
    ckpt = predictor.save(tmp_path / "p.pt")
    protos = [a for a in carbon_prototypes() if len(a) <= 8][:2]
    copies = recipe.noised_copies(protos, [0.0, 0.1], seed=0, jobs=1, cache=tmp_path / "copies.extxyz")
    run = tmp_path / "run"
    (run / "unguided").mkdir(parents=True)
    gaps = TightBindingGap(progress=False)(protos)
    for i, atoms in enumerate(protos):
        write(run / "unguided" / f"sample_{i:03d}.cif", atoms)
    samples = [{"valid": True, "gap": float(g)} for g in gaps] + [{"valid": False, "gap": None}]
    (run / "runs.json").write_text(json.dumps({"settings": {}, "runs": {"unguided": {"samples": samples}}}))
    args = argparse.Namespace(predictor=[str(ckpt)], copies=str(tmp_path / "copies.extxyz"), samples=str(run), data_dir=None)
    recipe.predictor_error(args)
    row = json.loads(capsys.readouterr().out)["predictors"][str(ckpt)]
    loaded = BandGapPredictor.load(ckpt)
    by_hand = np.abs(loaded.predict_atoms(copies) - [a.info["tb_gap"] for a in copies])
    assert row["copies_mae_ev"] == {"0": pytest.approx(by_hand[:2].mean(), abs=1e-4), "0.1": pytest.approx(by_hand[2:].mean(), abs=1e-4)}
    assert row["samples_unguided"]["n"] == 2  # the invalid sample is skipped
    assert row["samples_unguided"]["mae_ev"] == pytest.approx(np.abs(loaded.predict_atoms(protos) - gaps).mean(), abs=1e-3)
    assert row["heldout_mae_ev"] > 0
