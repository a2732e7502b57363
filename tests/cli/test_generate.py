"""``digmat generate``: crystals written atomically with their judgements, guidance that moves the
predicted gap, and clear errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from ase.io import read

from digmat.cli.main import main

pytest.importorskip("matgl")


def test_unguided_crystals_are_written_with_oracle_gaps(tmp_path, capsys):
    from digmat.design.bandgap import TightBindingGap

    out = tmp_path / "gen"
    assert main(["generate", "-n", "3", "--num-atoms", "8", "--steps", "20", "--oracle", "--out", str(out), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    crystals = read(out / "crystals.extxyz", ":")
    assert len(crystals) == 3 and summary["num_atoms"] == [8, 8, 8]
    assert all(a.pbc.all() and set(a.get_chemical_symbols()) == {"C"} for a in crystals)
    assert summary["validity"] == pytest.approx(np.mean([a.info["valid"] for a in crystals]))
    judged = [a for a in crystals if a.info["valid"]]
    assert judged, "no valid sample to check"
    # the written structures are the judged ones: recompute the oracle on what was read back
    np.testing.assert_allclose([a.info["tb_gap"] for a in judged], TightBindingGap(progress=False)(judged), atol=1e-6)
    assert json.loads((out / "generate.json").read_text())["validity"] == summary["validity"]


def test_guidance_raises_the_predicted_gap(tmp_path, capsys):
    from digmat.design.predictor import BandGapPredictor

    # 100 steps: at 40 the guidance gradients (norm 40-460 per step) make the guided chain chaotic and the
    # outcome a matter of float rounding (guided below unguided with one torch thread, above with two)
    common = ["-n", "8", "--num-atoms", "8", "--steps", "100", "--json"]
    assert main(["generate", *common, "--out", str(tmp_path / "free")]) == 0
    assert main(["generate", *common, "--gap", "6", "--out", str(tmp_path / "six")]) == 0
    capsys.readouterr()
    predictor = BandGapPredictor.load("carbon24_gap")
    free = predictor.predict_atoms(read(tmp_path / "free" / "crystals.extxyz", ":")).mean()
    guided = read(tmp_path / "six" / "crystals.extxyz", ":")
    assert predictor.predict_atoms(guided).mean() > free + 0.5
    assert all("predicted_gap" in a.info for a in guided if a.info["valid"])


def test_corrector_moves_are_used_below_the_noise_asked(tmp_path, capsys):
    from digmat.models import CrystalScoreModel

    common = ["-n", "2", "--num-atoms", "6", "--steps", "20", "--json"]
    assert main(["generate", *common, "--out", str(tmp_path / "plain")]) == 0
    assert main(["generate", *common, "--corrector", "2", "--snr", "0.2", "--correct-below", "0.3", "--out", str(tmp_path / "pc")]) == 0
    capsys.readouterr()
    corrector = json.loads((tmp_path / "pc" / "generate.json").read_text())["sampler"]["corrector"]
    t_max = float(CrystalScoreModel.from_checkpoint("carbon24").time_of_noise(0.3))
    assert corrector == {"steps": 2, "snr": 0.2, "t_max": pytest.approx(t_max)} and 0.05 < t_max < 0.15
    plain, pc = (read(tmp_path / name / "crystals.extxyz", ":") for name in ("plain", "pc"))
    assert all(not np.allclose(a.positions, b.positions) for a, b in zip(plain, pc))  # same seed: only the moves differ


@pytest.mark.parametrize("argv, message", [
    (["--sampler", "ode", "--corrector", "2"], "SDE sampler only"),
    (["--corrector", "-1"], "--corrector: must be >= 0"),
    (["-n", "0"], "--num-samples: must be >= 1"),
    (["--model", "adsorption", "-n", "1"], "not a crystal model"),
    (["--model", "no-such-model"], "shipped models"),
    (["--element", "Si", "-n", "1", "--steps", "2"], "not trained on Si"),
    (["--sampler", "ode", "--grid-power", "2"], "grid_power"),
])
def test_bad_input_gives_a_message_and_exit_code_2(tmp_path, capsys, argv, message):
    assert main(["generate", *argv, "--out", str(tmp_path / "x")]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "x" / "crystals.extxyz").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message for a missing CUDA device")
def test_cuda_requested_without_cuda(tmp_path, capsys):
    assert main(["generate", "--device", "cuda", "--out", str(tmp_path)]) == 2
    assert "CUDA is not available" in capsys.readouterr().err
