"""recipes/bench_crystal_sampler.py: a smoke run on a tiny model, seeded reproducibility, and bad sampler strings."""

from __future__ import annotations


import pytest
from ase.io import write

from digmat.checkpoint import save_checkpoint
from digmat.design.carbon24 import carbon_prototypes
from tests.models.test_crystal import tiny_model



@pytest.fixture(scope="module")
def bench(load_recipe):
    return load_recipe("bench_crystal_sampler")


def test_smoke_run_compares_samplers_against_the_baseline(bench, tmp_path):
    model = tiny_model(elements=("C",), num_atoms=((4, 1),)).float()
    ckpt = save_checkpoint(tmp_path / "model.pt", config=model.config.to_dict(), state_dict=model.state_dict(), metadata={"kind": "crystal"})
    reference = tmp_path / "reference.extxyz"
    write(reference, carbon_prototypes())
    out = bench.main(["--model", str(ckpt), "--reference", str(reference), "-n", "3", "--sampler", "sde:3", "--sampler", "sde:3",
                      "--sampler", "sde:3:3", "--sampler", "ode:2", "--sampler", "sde:3:1:2:0.1:1"])
    assert out["baseline"] == {"model": str(ckpt), "sampler": "sde:3:1"}
    assert [r["sampler"] for r in out["runs"]] == ["sde:3:1", "sde:3:1", "sde:3:3", "ode:2:1", "sde:3:1:2:0.1:1"]
    assert out["reference"]["n"] == len(carbon_prototypes())
    low, mid, high = out["reference"]["nn_distance_quantiles"]
    assert 1.3 < low <= mid <= high < 1.6  # the prototypes' C-C bonds
    same = out["runs"][1]
    for key in ("validity", "match_rate_loose", "match_rate_strict", "nn_distance_quantiles"):
        assert same[key] == out["runs"][0][key]  # same seed, same sampler: same samples
    assert all(0 <= r["validity"] <= 1 and r["seconds_per_sample"] > 0 for r in out["runs"])
    assert "machine" in out and out["runs"][0]["ratio_to_baseline"]["seconds_per_sample"] == 1.0


@pytest.mark.parametrize("text", ["sde", "sde:x", "euler:10", "ode:10:2", "sde:0", "sde:10:1:2", "sde:10:1:2:0:1", "ode:10:1:2:0.1:1"])
def test_bad_sampler_strings_are_argparse_errors(bench, text):
    with pytest.raises(SystemExit):
        bench.main(["--model", "unused.pt", "--sampler", text])


def test_two_models_are_compared_in_one_run(bench, tmp_path):
    """--model twice: every sampler for each model, the first model's first run the baseline."""
    paths = []
    for seed in (0, 1):
        model = tiny_model(seed=seed, elements=("C",), num_atoms=((4, 1),)).float()
        paths.append(str(save_checkpoint(tmp_path / f"m{seed}.pt", config=model.config.to_dict(), state_dict=model.state_dict(), metadata={}, kind="crystal")))
    reference = tmp_path / "reference.extxyz"
    write(reference, carbon_prototypes())
    out = bench.main(["--model", paths[0], "--model", paths[1], "--reference", str(reference), "-n", "2", "--sampler", "sde:2"])
    assert [r["model"] for r in out["runs"]] == paths and out["baseline"]["model"] == paths[0]
