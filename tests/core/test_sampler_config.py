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


@pytest.mark.parametrize("kwargs, match", [
    (dict(sampler="euler"), "sampler must be one of"),
    (dict(sampler=SamplerConfig("sde", 3), steps=4), "inside the SamplerConfig"),
    (dict(steps=2.5), "steps must be an integer"),
    (dict(seed=-1), "seed must be"),
    (dict(seed=True), "seed must be"),
    (dict(batch_size=0), "batch_size must be"),
    (dict(device="gpu0"), "not a torch device"),
])
def test_sample_config_refuses_bad_settings(kwargs, match):
    from digmat.core import SampleConfig

    with pytest.raises(ValueError, match=match):
        SampleConfig(**kwargs)


def test_sample_config_flat_keywords_and_kind_defaults():
    from digmat.core import SampleConfig

    base = SampleConfig(seed=3, batch_size=16)
    assert SampleConfig.build(base, sampler="sde") == SampleConfig("sde", seed=3, batch_size=16)
    assert SampleConfig.build(SampleConfig("ode", 9), sampler=SamplerConfig("sde", 4)).sampler == SamplerConfig("sde", 4)
    assert SampleConfig.build(device=torch.device("cpu")).device == "cpu"
    with pytest.raises(TypeError, match="unknown sampling option"):
        SampleConfig.build(stpes=3)
    defaults = {"ode": 25, "sde": 500}
    assert SampleConfig().sampler_config(defaults, "ode") == SamplerConfig("ode", 25)
    assert SampleConfig("sde").sampler_config(defaults, "ode") == SamplerConfig("sde", 500)
    assert SampleConfig(steps=7).sampler_config(defaults, "sde") == SamplerConfig("sde", 7)
    model = torch.nn.Linear(2, 2)
    assert SampleConfig().model_device(model) == SampleConfig(device="cpu").model_device(model) == torch.device("cpu")
    with pytest.raises(ValueError, match="move it with model.to"):
        SampleConfig(device="meta").model_device(model)


def test_both_families_take_the_same_config(tiny_model):
    """sample_adsorbates and sample_crystals accept one SampleConfig or its flat keywords alike."""
    from ase.build import fcc111

    from digmat.core import SampleConfig
    from digmat.tasks.sampling import sample_adsorbates

    slab = fcc111("Pt", (2, 2, 3), vacuum=6.0)
    config = SampleConfig("sde", 3, seed=5, batch_size=2)
    a = sample_adsorbates(slab, "O", tiny_model, config, num_samples=3)
    b = sample_adsorbates(slab, "O", tiny_model, num_samples=3, sampler="sde", steps=3, seed=5, batch_size=2)
    assert all((x.positions == y.positions).all() for x, y in zip(a.configurations, b.configurations))
    assert a.evaluations == b.evaluations == 3
