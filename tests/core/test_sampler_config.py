"""One sampling configuration, validated once, used by both model families."""

from __future__ import annotations

import pytest
import torch

from digmat.core import Diffusion, ProductMixture, SamplerConfig, StateSpace


@pytest.mark.parametrize("kwargs, match", [
    (dict(method="euler"), "sampler must be one of"),
    (dict(method="ode", steps=1), "steps >= 2"),
    (dict(method="sde", steps=0), "steps >= 1"),
    (dict(method="ode", steps=10, grid_power=2.0), "SDE only"),
    (dict(method="sde", grid_power=0.0), "grid_power"),
])
def test_bad_settings_are_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SamplerConfig(**kwargs)


def test_both_samplers_run_and_count_evaluations():
    space = StateSpace((2,))
    target = ProductMixture(Diffusion(space), torch.tensor([1.0]), torch.zeros(1, 2), torch.full((1, 2), 0.5))
    for config, evaluations in ((SamplerConfig("sde", 5), 5), (SamplerConfig("ode", 4), 7)):
        x, nfe = config.sample(target.diffusion, target.score_fn(), 3, generator=torch.Generator().manual_seed(0))
        assert x.shape == (3, 2) and nfe == evaluations == config.evaluations


def test_adsorption_defaults_and_one_config():
    from digmat.tasks.sampling import adsorption_sampler

    assert adsorption_sampler() == SamplerConfig("ode", 25)
    assert adsorption_sampler(None) == adsorption_sampler(None, 25) == SamplerConfig("ode", 25)  # None: the default sampler
    assert adsorption_sampler("sde") == SamplerConfig("sde", 500)
    assert adsorption_sampler(SamplerConfig("sde", 7)) == SamplerConfig("sde", 7)
    with pytest.raises(ValueError, match="steps >= 2"):
        adsorption_sampler("ode", 1)
