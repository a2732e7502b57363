"""recipes/bench_energy_adsorption.py: a smoke run — a tiny model trained from EMT alone on the slab of a
committed corpus result, scored against that result (populations sum to one, TVs recomputed, calls
against the search's), and one-line errors."""

from __future__ import annotations

import math

import pytest
from ase.io import write

from digmat.adsorption import ReferenceResult
from digmat.cli.main import main as digmat

from . import CORPUS_RESULT as RESULT, needs_corpus_result, total_variation

pytestmark = needs_corpus_result


@pytest.fixture(scope="module")
def recipe(load_recipe):
    return load_recipe("bench_energy_adsorption")


def test_smoke_run(recipe, tmp_path, capsys):
    ref = ReferenceResult.from_json(RESULT)
    write(tmp_path / "slab.extxyz", ref.slab)
    run = tmp_path / "run"
    assert digmat(["train", "adsorption", "--energy", "emt", str(tmp_path / "slab.extxyz"), "H", "-T", "300", "1200",
                   "--hottest", "1200", "--rung-ratio", "2", "--chains", "2", "--sweeps", "4", "--burn-in", "1",
                   "--steps", "2", "--batch-size", "8", "--layers", "1", "--embed-dim", "16", "--heads", "2",
                   "--cutoff", "4.0", "--rbf", "8", "--out", str(run), "--json"]) == 0
    capsys.readouterr()
    out = recipe.main([str(RESULT), str(run), "-n", "6", "--no-baseline"])
    (system,) = out["systems"]
    assert system["calculator"] == "emt" and system["reference_calls"] == ref.cost["calls"]
    assert system["calls_ratio"] == pytest.approx(system["calls"] / ref.cost["calls"], abs=0.01)
    assert system["jump_every"] == 2 and system["rhat"] == {"300K": None, "1200K": None}    # 3 recorded sweeps: too few for R̂
    for temp in ("300K", "1200K"):
        row = system[temp]
        for name in ("replica_exchange", "energy_model"):
            assert math.isclose(sum(row[name]["populations"].values()), 1.0, abs_tol=1e-3)
            assert row[name]["tv"] == pytest.approx(total_variation(row[name]["populations"], row["reference"]), abs=1e-4)
        assert 0 <= row["energy_model"]["coverage"] <= 1
    assert set(out["summary"]) >= {"tv_energy_model_300K_mean", "tv_replica_exchange_1200K_mean", "calls_ratio_median"}


def test_bad_arguments_are_one_line_errors(recipe, tmp_path, capsys):
    for argv, message in (([str(RESULT)], "pairs"), ([str(RESULT), str(tmp_path)], "has no samples.npz"),
                          ([str(tmp_path / "none.json"), str(tmp_path)], "no such reference result")):
        with pytest.raises(SystemExit) as exc:
            recipe.main(argv)
        assert exc.value.code == 2 and message in capsys.readouterr().err.strip().splitlines()[-1]
