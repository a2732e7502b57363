"""recipes/tempering_sites.py: a smoke run on a committed corpus result with EMT (structure, call
accounting, populations that sum to one, TV against the reference's site kinds) and one-line errors."""

from __future__ import annotations

import math

import pytest

from digmat.tasks.energy_training import BoltzmannSamples

from . import CORPUS_RESULT as RESULT, needs_corpus_result, total_variation

pytestmark = needs_corpus_result


@pytest.fixture(scope="module")
def recipe(load_recipe):
    return load_recipe("tempering_sites")


def test_smoke_run_counts_calls_and_compares_with_the_reference(recipe, tmp_path):
    out = recipe.main([str(RESULT), "--calculator", "emt", "--smoke", "-T", "300", "600", "1200", "--hottest", "1200", "--save", str(tmp_path)])
    (system,) = out["systems"]
    cfg = out["config"]
    assert system["system"] == "Cu-111-H" and system["calculator"] == "emt" and system["reference_calculator"] == "chgnet"
    # one call per chain and rung to start, then one per chain, rung and sweep, and one per jump (every 2nd sweep);
    # the window refuses a few jumps
    jumps = (cfg["sweeps"] + 1) // 2
    assert 5 * cfg["chains"] * (1 + cfg["sweeps"]) < system["calls"] <= 5 * cfg["chains"] * (1 + cfg["sweeps"] + jumps)
    assert all(row["jump_acceptance"] is not None for row in system["rungs"].values())
    assert system["calls_ratio"] == pytest.approx(system["calls"] / system["reference_calls"])
    assert system["samples_per_rung"] == cfg["chains"] * (cfg["sweeps"] - cfg["burn_in"])
    for temp in ("300K", "1200K"):
        row = system["rungs"][temp]
        assert math.isclose(sum(row["populations"].values()), 1.0)
        assert 0 <= row["tv_site_kind"] <= 1 and set(row["reference"]) >= {"hollow-fcc"}
        assert row["tv_site_kind"] == pytest.approx(total_variation(row["populations"], row["reference"]))
    assert len(system["swap_acceptance"]) == 4
    saved, settings = BoltzmannSamples.load(tmp_path / "Cu-111-H_samples.npz")
    assert saved.states.shape[:2] == (5, (cfg["sweeps"] - cfg["burn_in"]) * cfg["chains"])   # 300 424 600 849 1200
    assert saved.energy_grad.shape == saved.states.shape and settings["calculator"] == "emt"
    assert saved.ladder[[0, 2, 4]].tolist() == [300, 600, 1200]


@pytest.mark.parametrize("argv, message", [
    (["--sweeps", "3", "--burn-in", "3"], "--burn-in"),
    (["-T", "300", "300"], "distinct"),
    (["--rung-ratio", "1"], "--rung-ratio"),
    (["--height-window", "2", "1"], "LOW < HIGH"),
    (["--calculator", "nosuch"], "nosuch"),
])
def test_bad_arguments_are_one_line_errors(recipe, argv, message, capsys):
    with pytest.raises(SystemExit) as exc:
        recipe.main([str(RESULT), "--smoke", *argv])
    assert exc.value.code == 2 and message in capsys.readouterr().err.strip().splitlines()[-1]


def test_a_missing_result_file_is_named(recipe, tmp_path, capsys):
    with pytest.raises(SystemExit):
        recipe.main([str(tmp_path / "none.json"), "--smoke"])
    assert "none.json" in capsys.readouterr().err
