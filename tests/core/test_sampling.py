"""Samplers against exact targets: mode weights, moments, and the cost in score evaluations.

Tolerances: mode weights within 0.02 of the truth (n samples, so the Monte-Carlo s.d. of a
weight is <= sqrt(0.25/n) ~ 0.007); first and second moments (circular moments on periodic
entries) within 4 Monte-Carlo standard errors plus 0.01 for discretisation.
"""

import math

import pytest
import torch

from digmat.core import ODEConfig, decode, resample_sde, sample_ode, sample_sde

from .targets import TARGETS

N_SAMPLES = 5000


def moment_features(mix, x: torch.Tensor) -> torch.Tensor:
    """Per-sample features whose means are the moments we check: x, x^2 (Euclidean); cos, sin (periodic)."""
    space = mix.diffusion.space
    feats = []
    mask = space.torus_mask(x)
    periods = space.periods(x)
    for j in range(x.shape[1]):
        if bool(mask[j]):
            ang = 2 * math.pi * x[:, j] / periods[j]
            feats += [torch.cos(ang), torch.sin(ang)]
        else:
            feats += [x[:, j], x[:, j] ** 2]
    return torch.stack(feats, 1)


def check_samples(mix, x: torch.Tensor, seed: int) -> dict[str, float]:
    n = x.shape[0]
    labels = mix.component_posterior(x).argmax(1)
    weights = torch.bincount(labels, minlength=mix.num_components).double() / n
    weight_err = float((weights - mix.weights).abs().max())
    exact, _ = mix.sample(400_000, generator=torch.Generator().manual_seed(seed))
    f_exact = moment_features(mix, exact)
    # assignment by posterior argmax is exact for exact samples up to overlap: compare like with like
    exact_labels = mix.component_posterior(exact).argmax(1)
    ref_weights = torch.bincount(exact_labels, minlength=mix.num_components).double() / exact.shape[0]
    weight_err = float((weights - ref_weights).abs().max())
    f = moment_features(mix, x)
    se = f.std(0) / math.sqrt(n)
    z = ((f.mean(0) - f_exact.mean(0)).abs() - 0.01).clamp_min(0) / se
    return {"weight_err": weight_err, "moment_z": float(z.max())}


# The low-noise grid on the mixed target runs with -m slow (~30 s on CI); the grid itself is tested in
# tests/core/test_schedule.py and used by tests/design/test_generate.py.
@pytest.mark.parametrize("name, grid_power", [(name, 1.0) for name in TARGETS] + [pytest.param("mixed", 3.0, marks=pytest.mark.slow)])
def test_sde_1000_steps(name, grid_power):
    """DiG's chain on the uniform grid, and on one dense at low noise (t = u^3) on the mixed target."""
    mix = TARGETS[name]()
    out = sample_sde(mix.diffusion, mix.score_fn(), N_SAMPLES, steps=1000, grid_power=grid_power, generator=torch.Generator().manual_seed(11),
                     dtype=torch.float64)
    assert out.nfe == 1000
    stats = check_samples(mix, out.x, 1)
    assert stats["weight_err"] < 0.02, stats
    assert stats["moment_z"] < 4, stats


@pytest.mark.parametrize("name", list(TARGETS))
@pytest.mark.parametrize("config", [ODEConfig("heun", steps=25), ODEConfig("dopri5", rtol=1e-3, atol=1e-3)], ids=["heun25", "dopri5"])
def test_ode_at_most_50_evaluations(name, config):
    """The probability-flow ODE with <= 50 score evaluations meets the same bar as the 1000-step SDE."""
    mix = TARGETS[name]()
    out = sample_ode(mix.diffusion, mix.score_fn(), N_SAMPLES, config, generator=torch.Generator().manual_seed(12), dtype=torch.float64)
    assert out.nfe <= 50 if config.method == "heun" else out.nfe <= 120
    stats = check_samples(mix, out.x, 2)
    assert stats["weight_err"] < 0.02, stats
    assert stats["moment_z"] < 4, stats


@pytest.mark.parametrize("name", list(TARGETS))
def test_heun_transport_matches_a_tight_reference_solve(name):
    """Same latents, Heun-25 vs Dormand–Prince at rtol 1e-7: the deterministic map agrees closely."""
    mix = TARGETS[name]()
    d = mix.diffusion
    latent = d.space.sample_prior(256, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    coarse = decode(d, mix.score_fn(), latent, ODEConfig("heun", steps=25))
    fine = decode(d, mix.score_fn(), latent, ODEConfig("dopri5", rtol=1e-7, atol=1e-7))
    err = d.space.difference(coarse.x, fine.x)
    assert coarse.nfe == 49
    # measured medians: 0.015 (Euclidean), 0.002 (torus), 0.006 (mixed); max errors come from
    # trajectories that start on a separatrix between modes and are not a solver defect
    assert float(err.abs().median()) < 0.025, float(err.abs().median())


def test_samplers_are_seeded_and_device_dtype_aware():
    mix = TARGETS["mixed"]()
    d = mix.diffusion
    a = sample_ode(d, mix.score_fn(), 8, ODEConfig("heun", 5), generator=torch.Generator().manual_seed(4), dtype=torch.float64).x
    b = sample_ode(d, mix.score_fn(), 8, ODEConfig("heun", 5), generator=torch.Generator().manual_seed(4), dtype=torch.float64).x
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    c = sample_sde(d, mix.score_fn(), 8, steps=20, generator=torch.Generator().manual_seed(4), dtype=torch.float32).x
    assert c.dtype == torch.float32 and torch.isfinite(c).all()
    periods = d.space.periods(c)
    assert (c[:, :2] >= 0).all() and (c[:, :2] < periods[:2]).all()


def test_bad_ode_config_is_refused():
    with pytest.raises(ValueError, match="unknown ODE method"):
        ODEConfig("rk4")
    with pytest.raises(ValueError, match="steps"):
        ODEConfig(steps=0)


@pytest.mark.parametrize("name", list(TARGETS))
def test_resampling_exact_draws_returns_the_target(name):
    """Exact target draws noised to t = 0.3 and denoised with the exact score are again target
    draws (weights and moments as for the full chain); t_start below the grid's first point
    returns the input; the steps run are counted."""
    mix = TARGETS[name]()
    d = mix.diffusion
    x0, _ = mix.sample(N_SAMPLES, generator=torch.Generator().manual_seed(5))
    out = resample_sde(d, mix.score_fn(), x0.double(), 0.3, steps=1000, generator=torch.Generator().manual_seed(6))
    assert 290 <= out.nfe <= 300
    stats = check_samples(mix, out.x, 3)
    assert stats["weight_err"] < 0.02, stats
    assert stats["moment_z"] < 4, stats
    moved = d.space.difference(out.x, x0.double()).abs().mean()
    assert moved > 0.05  # the draws were really noised, not returned
    same = resample_sde(d, mix.score_fn(), x0[:4].double(), 1e-9, steps=1000)
    assert same.nfe == 0 and torch.equal(same.x, x0[:4].double())
    with pytest.raises(ValueError, match="t_start"):
        resample_sde(d, mix.score_fn(), x0[:4].double(), 1.5)
