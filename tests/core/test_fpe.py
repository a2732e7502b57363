"""The Fokker–Planck residuals against targets whose log-density is exact at every t.

A diffused :class:`ProductMixture` solves the forward process's Fokker–Planck equation
exactly, so both residuals must vanish to float64 round-off on Euclidean, periodic and mixed
spaces, at low and high noise; a model with the wrong time dependence must not.
"""

import pytest
import torch

from digmat.core import fpe_coefficients, log_density_residual, potential_score, score_residual

from .targets import TARGETS

TIMES = [0.002, 0.05, 0.3, 0.9]


def _points(mix, t_value, n=48, seed=0):
    x0, _ = mix.sample(n, generator=torch.Generator().manual_seed(seed))
    t = torch.full((n,), t_value, dtype=torch.float64)
    xt, _ = mix.diffusion.perturb(x0, t, generator=torch.Generator().manual_seed(seed + 1))
    return xt, t


@pytest.mark.parametrize("name", list(TARGETS))
@pytest.mark.parametrize("t_value", TIMES)
def test_exact_log_density_and_score_have_zero_residual(name, t_value):
    mix = TARGETS[name]()
    xt, t = _points(mix, t_value)
    residual, score = log_density_residual(mix.diffusion, lambda x, s: mix.log_prob(x, s) + 3.0, xt, t)
    assert residual.abs().max() < 1e-9
    assert torch.allclose(score, mix.score(xt, t), atol=1e-10)
    vector = score_residual(mix.diffusion, lambda x, s: mix.score(x, s), xt, t)
    assert vector.shape == xt.shape and vector.abs().max() < 1e-9


@pytest.mark.parametrize("name", list(TARGETS))
def test_wrong_time_dependence_is_detected(name):
    """log p at 1.2 t is a smooth, plausible model that is not the diffusion of the target."""
    mix = TARGETS[name]()
    xt, t = _points(mix, 0.05)
    residual, _ = log_density_residual(mix.diffusion, lambda x, s: mix.log_prob(x, 1.2 * s), xt, t)
    vector = score_residual(mix.diffusion, lambda x, s: mix.score(x, 1.2 * s), xt, t)
    assert residual.abs().median() > 0.5
    assert vector.abs().max() > 0.5


def test_hutchinson_is_unbiased():
    mix = TARGETS["mixed"]()
    xt, t = _points(mix, 0.05, n=8)
    wrong = lambda x, s: mix.log_prob(x, 1.2 * s)  # noqa: E731 — a non-zero residual to estimate
    exact, _ = log_density_residual(mix.diffusion, wrong, xt, t)
    draws = torch.stack([log_density_residual(mix.diffusion, wrong, xt, t, divergence="hutchinson", probes=50,
                                              generator=torch.Generator().manual_seed(k))[0].detach() for k in range(8)])
    mean, se = draws.mean(0), draws.std(0) / 8**0.5
    assert ((mean - exact.detach()).abs() <= 4 * se + 1e-9).all()
    assert (draws.std(0) > 0).any()  # it really is stochastic


def test_coefficients_are_the_growth_of_the_noise_variance():
    """D = (1/2) d var(x_t | x_0)/dt + a var on each entry (Euclidean: a = D = beta/2; periodic: a = 0)."""
    mix = TARGETS["mixed"]()
    d = mix.diffusion
    like = torch.zeros(3, *d.space.shape, dtype=torch.float64)
    t = torch.tensor([0.01, 0.1, 0.4], dtype=torch.float64)
    a, diff = fpe_coefficients(d, t, like)
    h = 1e-6
    dvar = (d.noise_std(t + h, like) ** 2 - d.noise_std(t - h, like) ** 2) / (2 * h)
    var = d.noise_std(t, like) ** 2
    assert torch.allclose(diff, 0.5 * dvar + a * var, rtol=1e-6)
    assert (a[:, :2] == 0).all() and torch.allclose(a[:, 2], 0.5 * d.schedule.beta(t))


def test_potential_score_works_inside_no_grad_and_rejects_bad_shapes():
    mix = TARGETS["euclidean"]()
    xt, t = _points(mix, 0.1)
    with torch.no_grad():
        s = potential_score(lambda x, s_: mix.log_prob(x, s_))(xt, t)
    assert torch.allclose(s, mix.score(xt, t), atol=1e-12)
    with pytest.raises(ValueError, match="shape"):
        log_density_residual(mix.diffusion, lambda x, s_: mix.log_prob(x, s_)[:, None], xt, t)
    with pytest.raises(ValueError, match="divergence"):
        log_density_residual(mix.diffusion, lambda x, s_: mix.log_prob(x, s_), xt, t, divergence="trace")
