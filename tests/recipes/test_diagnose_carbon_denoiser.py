"""recipes/diagnose_carbon_denoiser.py: smoke runs of the diagnostics on a tiny model, EMT and the carbon prototypes."""

from __future__ import annotations

import pytest
from ase.io import write

from digmat.checkpoint import save_checkpoint
from digmat.design.carbon24 import carbon_prototypes
from tests.models.test_crystal import tiny_model


@pytest.fixture(scope="module")
def diagnose(load_recipe):
    return load_recipe("diagnose_carbon_denoiser")


@pytest.fixture()
def files(tmp_path):
    model = tiny_model(elements=("C",), num_atoms=((4, 1),)).float()
    ckpt = save_checkpoint(tmp_path / "model.pt", config=model.config.to_dict(), state_dict=model.state_dict(), metadata={}, kind="crystal")
    structures = tmp_path / "protos.extxyz"
    write(structures, carbon_prototypes())
    return str(ckpt), str(structures)


def test_band_fit_reports_errors_before_and_after(diagnose, files):
    ckpt, structures = files
    out = diagnose.main(["band-fit", "--model", ckpt, "--structures", structures, "--subset", "2", "--steps", "3", "--batch-size", "2",
                         "--log-every", "1", "--noise", "0.1", "0.3"])
    assert out["structures"] == 2 and [r["step"] for r in out["log"]] == [1, 2, 3]
    for when in ("before", "after"):
        assert len(out[when]["fractional"]) == 2 and all(v > 0 for v in out[when]["fractional"])
    assert out["before"] != out["after"]  # the weights moved


def test_relax_denoiser_scores_a_relaxation_against_the_drawn_noise(diagnose, files):
    ckpt, structures = files
    out = diagnose.main(["relax-denoiser", "--model", ckpt, "--structures", structures, "-n", "2", "--noise", "0.05", "--calculator", "emt",
                         "--max-steps", "20"])
    (row,) = out["rows"]
    assert row["noise_A"] == 0.05 and row["relaxation"] > 0 and row["model"] > 0
    assert row["relaxation_scaled"] <= row["relaxation"] + 1e-9  # the least-squares scale can only help
    assert row["mean_relax_steps"] <= 20


def test_oracle_tolerance_keeps_the_gap_without_noise_and_loses_it_with_much(diagnose, files):
    """The prototypes' gapped ones (diamond, ...): noise 0 is the clean oracle (all gapped), 0.3 Å per
    coordinate makes an amorphous, metallic network."""
    _, structures = files
    out = diagnose.main(["oracle-tolerance", "--structures", structures, "--noise", "0", "0.3"])
    assert out["structures"] >= 1
    clean, noisy = out["rows"]
    assert clean["gapped_share"] == 1.0 and clean["nn_distance_quantiles_A"][1] > 1.3
    assert noisy["gapped_share"] < 1.0 and noisy["nn_distance_quantiles_A"][0] < clean["nn_distance_quantiles_A"][0]
