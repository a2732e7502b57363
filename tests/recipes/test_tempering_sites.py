"""recipes/tempering_sites.py: a smoke run on a committed corpus result with EMT (structure, call
accounting, populations that sum to one, TV against the reference's site kinds) and one-line errors."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

RESULT = Path(__file__).resolve().parents[2] / "data" / "corpus" / "results" / "Cu-111-H.json"
pytestmark = [pytest.mark.skipif(not RESULT.is_file(), reason="corpus result Cu-111-H.json not present"),
              pytest.mark.usefixtures("one_thread")]


@pytest.fixture(scope="module")
def recipe(load_recipe):
    return load_recipe("tempering_sites")


def test_smoke_run_counts_calls_and_compares_with_the_reference(recipe, tmp_path):
    out = recipe.main([str(RESULT), "--calculator", "emt", "--smoke", "--ladder", "300", "600", "1200", "--save", str(tmp_path)])
    (system,) = out["systems"]
    cfg = out["config"]
    assert system["system"] == "Cu-111-H" and system["calculator"] == "emt" and system["reference_calculator"] == "chgnet"
    # one call per chain and rung to start, then one per chain, rung and sweep (the window refuses none here)
    assert system["calls"] <= 3 * cfg["chains"] * (1 + cfg["sweeps"])
    assert system["calls_ratio"] == pytest.approx(system["calls"] / system["reference_calls"])
    assert system["samples_per_rung"] == cfg["chains"] * (cfg["sweeps"] - cfg["burn_in"])
    for temp in ("300K", "1200K"):
        row = system["rungs"][temp]
        assert math.isclose(sum(row["populations"].values()), 1.0)
        assert 0 <= row["tv_site_kind"] <= 1 and set(row["reference"]) >= {"hollow-fcc"}
        assert row["tv_site_kind"] == pytest.approx(recipe.total_variation(row["populations"], row["reference"]))
    assert len(system["swap_acceptance"]) == 2
    saved = np.load(tmp_path / "Cu-111-H_tempering.npz")
    assert saved["states"].shape[:3] == (3, cfg["sweeps"] - cfg["burn_in"], cfg["chains"])
    assert saved["energy_grad"].shape == saved["states"].shape and list(saved["temperatures"]) == [300, 600, 1200]


@pytest.mark.parametrize("argv, message", [
    (["--sweeps", "3", "--burn-in", "3"], "--burn-in"),
    (["--ladder", "300", "300"], "distinct"),
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
