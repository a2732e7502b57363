"""recipes/bench_boltzmann.py: smoke runs on DW-4 and LJ-13 (structure, equal cost, finite metrics,
seeded reproducibility, the saved model) and one-line argparse errors for bad inputs."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from digmat.boltzmann import SYSTEMS, find_boltzmann_dir, load_reference
from digmat.nn.pairnet import PairNet, PairNetConfig

pytestmark = [
    pytest.mark.skipif(find_boltzmann_dir() is None,
                       reason="Boltzmann reference samples (shared/data/boltzmann, $DIGMAT_BOLTZMANN) not available"),
    pytest.mark.usefixtures("one_thread"),  # the recipe sets one thread only as a script
]

ROWS = ("pidp", "mala")
METRICS = ("energy_w2", "energy_w2_squared", "x_w2", "distance_w2")


@pytest.fixture(scope="module")
def bench(load_recipe):
    return load_recipe("bench_boltzmann")


@pytest.fixture(scope="module")
def smoke(bench, tmp_path_factory, one_thread):
    save = tmp_path_factory.mktemp("boltzmann") / "model.pt"
    return bench.main(["--smoke", "--save", str(save)]), save


def test_smoke_run_reports_both_systems_at_equal_cost(bench, smoke, capsys):
    out, _ = smoke
    assert set(out["systems"]) == {"dw4", "lj13"}
    assert out["machine"]["threads"] >= 1 and out["config"]["smoke"] is True
    cfg = out["config"]
    for name, res in out["systems"].items():
        pidp, mala = res["pidp"], res["mala"]
        # PIDP's cost: the first buffer's MALA (one evaluation per chain and step, plus the start of each of its
        # two legs) + training: each refreshed buffer state checked once, then moved by 5 MALA steps
        assert pidp["buffer_chains"] == cfg["buffer_size"] and pidp["init_mala_steps"] == cfg["init_mala_steps"]  # smoke
        assert pidp["evaluations_init_mala"] == cfg["buffer_size"] * (cfg["init_mala_steps"] + 2)
        refreshes = (cfg["steps"] - 1) // cfg["refresh_every"]
        assert 0 < pidp["evaluations_training"] <= refreshes * round(0.25 * cfg["buffer_size"]) * (1 + 5)
        assert pidp["corrector"]["model_calls"] == cfg["n"] * (cfg["corrector_steps"] + 2)
        assert set(pidp["without_corrector"]) >= {"energy_w2", "x_w2", "mean_energy"}
        floor = res["reference_floor"]
        assert floor is None or 0 <= floor["energy_w2_min"] <= floor["energy_w2_median"] <= floor["energy_w2_max"]
        rw = pidp["reweighted"]
        assert 1 - 1e-9 <= rw["ess"] <= cfg["n"] + 1e-9 and rw["target_evaluations"] == cfg["n"]
        assert 1 <= rw["distinct_states"] <= cfg["n"] and rw["energy_w2"] >= 0
        assert pidp["evaluations"] == pidp["evaluations_init_mala"] + pidp["evaluations_training"]
        # MALA spends the same budget, to within one step of all chains
        assert 0 <= pidp["evaluations"] - mala["evaluations"] < cfg["n"], (name, pidp["evaluations"], mala["evaluations"])
        assert mala["chains"] == cfg["n"] and mala["burn_in_steps"] + mala["sampling_steps"] + 2 == pidp["evaluations"] // cfg["n"]
        for row in (pidp, mala):
            assert row["n"] == cfg["n"] and 0 <= row["nonfinite_fraction"] <= 1 and 0 <= row["exploded_fraction"] <= 1
            assert row["x_w2_n"] == cfg["xw2_n"]
            for key in METRICS:
                assert math.isfinite(row[key]) and row[key] >= 0, (name, key, row[key])
            assert math.isclose(row["energy_w2_squared"], row["energy_w2"] ** 2)
            assert math.isfinite(row["mean_energy"]) and {"train_seconds", "sample_seconds"} <= set(row)
        assert 0 <= mala["acceptance"] <= 1
        for key in ("evaluations", *METRICS):
            assert res["ratio_pidp_to_mala"][key] == pytest.approx(pidp[key] / mala[key])
        assert res["published"] == bench.PUBLISHED[name] and res["system"]["name"] == name
        # the reference is the test split, -n rows drawn with the fixed seed 0
        ref = load_reference(name, "test")
        rows = np.random.default_rng(0).choice(ref.shape[0], size=cfg["n"], replace=False)
        with torch.no_grad():
            mean = float(SYSTEMS[name].energy(torch.as_tensor(ref[rows])).mean())
        assert pidp["reference_mean_energy"] == pytest.approx(mean) == mala["reference_mean_energy"]
    # DW-4's MALA: finite energy W2, in kT, and nothing exploded (its energy is finite everywhere)
    dw4 = out["systems"]["dw4"]["mala"]
    assert math.isfinite(dw4["energy_w2"]) and dw4["nonfinite_fraction"] == 0.0
    assert -30 < out["systems"]["dw4"]["pidp"]["reference_mean_energy"] < -15


def test_same_seed_same_numbers_other_seed_other_numbers(bench, smoke, capsys):
    out, _ = smoke
    again = bench.main(["--smoke", "--system", "dw4"])["systems"]["dw4"]
    printed = json.loads(capsys.readouterr().out)
    assert printed["systems"]["dw4"]["mala"]["energy_w2"] == again["mala"]["energy_w2"]  # the JSON printed is what main returns
    first = out["systems"]["dw4"]
    for row in ROWS:
        for key in ("evaluations", "mean_energy", *METRICS):
            assert again[row][key] == first[row][key], (row, key)
    other = bench.main(["--smoke", "--system", "dw4", "--seed", "1"])["systems"]["dw4"]
    assert other["pidp"]["mean_energy"] != first["pidp"]["mean_energy"]
    assert other["mala"]["mean_energy"] != first["mala"]["mean_energy"]


def test_saved_models_load_into_pairnet(smoke):
    out, save = smoke
    for name, res in out["systems"].items():
        path = save.with_name(f"model_{name}.pt")
        assert res["pidp"]["saved"] == str(path)
        blob = torch.load(path, weights_only=False)
        net = PairNet(PairNetConfig.from_dict(blob["network"])).double()
        net.load_state_dict(blob["state_dict"])
        assert blob["system"] == name and blob["pidp"]["steps"] == out["config"]["steps"]


@pytest.mark.parametrize("argv, message", [
    (["--system", "lj38"], "unknown system 'lj38'"),
    (["-n", "0"], "-n must be a positive integer"),
    (["--steps", "0"], "--steps must be a positive integer"),
    (["--batch-size", "-3"], "--batch-size must be a positive integer"),
    (["--sampler-steps", "0"], "--sampler-steps must be a positive integer"),
    (["--xw2-n", "-1"], "--xw2-n must be >= 0"),
    (["--lr", "0"], "--lr and --init-std must be > 0"),
    (["--steps", "ten"], "invalid int value"),
    (["--corrector-steps", "-1"], "--corrector-steps must be >= 0"),
    (["--fpe-weight", "-1"], "--fpe-weight must be >= 0"),
    (["--tsm-weight", "0"], "nothing to train"),
    (["--time-power", "0"], "--time-power must be > 0"),
    (["--buffer-chains", "5"], "--buffer-chains must divide --buffer-size"),
])
def test_bad_arguments_are_one_line_argparse_errors(bench, argv, message, capsys):
    with pytest.raises(SystemExit) as exc:
        bench.main(["--smoke", *argv])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert message in err[-1], err


def test_full_mode_buffer_plans_per_system(bench):
    import argparse

    args = argparse.Namespace(smoke=False, buffer_chains=None, init_mala_steps=None, buffer_size=2000)
    assert bench.buffer_plan(args, "dw4") == (2000, 200) and bench.buffer_plan(args, "lj13") == (250, 1600)
    args.buffer_chains, args.init_mala_steps = 500, 40
    assert bench.buffer_plan(args, "lj13") == (500, 40)


def test_missing_reference_data_names_where_it_looked(bench, tmp_path, capsys):
    with pytest.raises(SystemExit):
        bench.main(["--smoke", "--system", "dw4", "--data-dir", str(tmp_path)])
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "--data-dir" in err and str(tmp_path) in err and "_split_" in err


def test_absent_reference_data_is_a_one_line_error(bench, monkeypatch, capsys):
    import digmat.boltzmann

    monkeypatch.setattr(digmat.boltzmann, "find_boltzmann_dir", lambda root=None: None)
    with pytest.raises(SystemExit):
        bench.main(["--smoke", "--system", "dw4"])
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "no Boltzmann reference samples" in err and "DIGMAT_BOLTZMANN" in err and "shared/data/boltzmann" in err


def test_budget_below_two_steps_per_chain_is_a_one_line_error(bench, capsys):
    with pytest.raises(SystemExit) as exc:
        bench.main(["--smoke", "--system", "dw4", "-n", "2000"])  # the smoke PIDP spends ~1.1k evaluations
    assert "fewer than 2 per MALA chain" in str(exc.value) and "\n" not in str(exc.value)
