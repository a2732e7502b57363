"""recipes/train_carbon.py: the displaced, oracle-labelled copies that teach the band-gap
predictor what disorder does to the gap."""

from __future__ import annotations

import numpy as np
import pytest

from digmat.design import TightBindingGap
from digmat.design.carbon24 import carbon_prototypes


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
