"""Log-densities from the probability-flow ODE against the analytic marginal at t_min."""

import pytest
import torch

from digmat.core import ODEConfig, decode, encode, log_prob

from .targets import TARGETS

TIGHT = ODEConfig("dopri5", rtol=1e-5, atol=1e-5)


def points(mix, n=24, seed=0):
    x, _ = mix.sample(n, generator=torch.Generator().manual_seed(seed))
    return x


@pytest.mark.parametrize("name", list(TARGETS))
def test_exact_trace_log_prob_within_005_nats(name):
    mix = TARGETS[name]()
    d = mix.diffusion
    x = points(mix)
    ref = mix.log_prob(x, torch.tensor(d.schedule.t_min, dtype=torch.float64))
    out = log_prob(d, mix.score_fn(), x, TIGHT, divergence="exact")
    err = (out.log_prob - ref).abs()
    assert float(err.max()) < 0.05, err
    assert (out.stderr == 0).all()
    # the returned latent is the encoding of x
    torch.testing.assert_close(out.latent, encode(d, mix.score_fn(), x, TIGHT).latent, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("name", list(TARGETS))
def test_hutchinson_within_three_standard_errors(name):
    mix = TARGETS[name]()
    d = mix.diffusion
    x = points(mix, seed=1)
    ref = mix.log_prob(x, torch.tensor(d.schedule.t_min, dtype=torch.float64))
    exact = log_prob(d, mix.score_fn(), x, TIGHT, divergence="exact")
    hutch = log_prob(d, mix.score_fn(), x, TIGHT, divergence="hutchinson", probes=16, generator=torch.Generator().manual_seed(2))
    assert (hutch.stderr > 0).all()
    # against the analytic value, allowing the solver error the exact trace shows (< 0.05);
    # the standard error is itself estimated from 16 probes, so judge the share of points
    within = (hutch.log_prob - ref).abs() <= 3 * hutch.stderr + 0.05
    assert float(within.double().mean()) >= 0.9, within
    assert ((hutch.log_prob - ref).abs() <= 5 * hutch.stderr + 0.05).all()
    # against the same ODE with the exact trace: the estimator's error alone, and its calibration
    z = (hutch.log_prob - exact.log_prob) / hutch.stderr
    assert float((z.abs() <= 3).float().mean()) >= 0.9, z


def test_auto_chooses_hutchinson_for_large_states_and_validates():
    mix = TARGETS["euclidean"]()
    d = mix.diffusion
    x = points(mix, n=4)
    out = log_prob(d, mix.score_fn(), x, TIGHT, exact_max_dim=1, probes=4)
    assert (out.stderr > 0).all()
    with pytest.raises(ValueError, match="divergence"):
        log_prob(d, mix.score_fn(), x, divergence="exactish")
    with pytest.raises(ValueError, match="probes"):
        log_prob(d, mix.score_fn(), x, divergence="hutchinson", probes=1)
    with pytest.raises(ValueError, match="NaN"):
        log_prob(d, mix.score_fn(), torch.full_like(x, float("nan")))


@pytest.mark.parametrize("name", list(TARGETS))
def test_encode_decode_round_trip(name):
    mix = TARGETS[name]()
    d = mix.diffusion
    x = points(mix, n=32, seed=4)
    latent = encode(d, mix.score_fn(), x, TIGHT).latent
    back = decode(d, mix.score_fn(), latent, TIGHT, denoise=False).x
    assert float(d.space.difference(back, x).abs().max()) < 1e-3
