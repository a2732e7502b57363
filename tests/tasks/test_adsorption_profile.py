"""The reference oracle of an adsorption system: sampling with its score reproduces the reference
search's site populations (checked against independent exact draws of the harmonic distribution),
the switched scores route by noise level, and as a denoiser it is the floor under the shipped model."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from digmat.adsorption import ReferenceResult, sample_equilibrium
from digmat.pretrained import load_model
from digmat.systems import AdsorbateSystem
from digmat.tasks.adsorption_profile import (denoising_profile, reference_oracle, site_kind_shares, switched_populations,
                                             switched_score)
from digmat.tasks.sampling import total_variation

from ..toy_models import tiny_adsorption_network

CORPUS = Path(__file__).resolve().parents[2] / "data" / "corpus" / "results"


@pytest.fixture(scope="module")
def case():
    """Cu3Au(111)+H at 1200 K: fcc, hcp and bridge all populated in CHGNet's reference."""
    result = ReferenceResult.from_json(CORPUS / "Cu3Au-111-H.json")
    model = load_model("adsorption")
    system = AdsorbateSystem(result.slab, result.adsorbate, config=model.config.state)
    oracle = reference_oracle(system, system.diffusion(model.config.schedule), result, 1200.0, num=768, seed=1)
    return result, model, system, oracle


def test_switched_score_routes_by_time():
    high, low = (lambda x, t: torch.ones_like(x)), (lambda x, t: -torch.ones_like(x))
    score = switched_score(high, low, 0.3)
    x = torch.zeros(4, 3)
    assert (score(x, torch.full((4,), 0.3)) == 1).all() and (score(x, torch.tensor(0.29)) == -1).all()


def _untrained_model():
    from digmat.models import AdsorptionModelConfig, AdsorptionScoreModel

    torch.manual_seed(0)
    return AdsorptionScoreModel(AdsorptionModelConfig(network=tiny_adsorption_network())).eval()


def test_oracle_sampling_reproduces_reference_populations(case):
    result, _, system, oracle = case
    model = _untrained_model()  # the oracle is what is checked; the model run is only the report's other column
    reference = site_kind_shares(system, system.to_state(sample_equilibrium(result, 1200.0, 1024, seed=5)))
    assert len([k for k, v in reference.items() if v > 0.05]) >= 2  # a mixed case, not one site
    out = switched_populations(model, system, oracle, 1200.0, [], num=96, seed=2)
    assert total_variation(out["oracle"], reference) < 0.12  # sampling noise with 96 samples: ~0.05
    assert set(out) == {"model", "oracle", "oracle_high", "model_high"}


def test_oracle_is_the_floor_of_the_denoising_error(case):
    result, model, system, oracle = case
    data = system.to_state(sample_equilibrium(result, 1200.0, 384, seed=9))
    rows = denoising_profile(model, system, oracle, data, 1200.0, [0.1, 0.2, 0.3, 0.45], seed=3)
    assert [r["t"] for r in rows] == [0.1, 0.2, 0.3, 0.45]
    assert all(rows[i]["sigma_A"] < rows[i + 1]["sigma_A"] for i in range(3))
    for row in rows:
        for block in ("in_plane", "height"):
            assert row["oracle"][block] <= row["model"][block] + 0.02, row
    # a mis-scaled oracle (its components at the wrong noise level) is no floor
    assert rows[1]["oracle"]["in_plane"] < 0.5
