import math

import numpy as np
import pytest
import torch

from digmat.core.torus import truncation_error_bound, wrap, wrap_centered, wrapped_normal_log_prob, wrapped_normal_score

STDS = [0.01, 0.1, 0.3, 0.5, 0.50001, 0.8, 3.0, 150.0]


def brute_force_log_prob(x: np.ndarray, mean: float, std: float, period: float) -> np.ndarray:
    """Independent reference: the wrapped sum with thousands of terms, in log space."""
    k = np.arange(-4000, 4001)
    z = (x[:, None] - mean + k * period) / std
    m = (-0.5 * z**2).max(1, keepdims=True)
    return (m[:, 0] + np.log(np.exp(-0.5 * z**2 - m).sum(1))) - 0.5 * np.log(2 * np.pi * std**2)


@pytest.mark.parametrize("std", STDS)
@pytest.mark.parametrize("period", [1.0, 2.7])
def test_log_prob_matches_brute_force_sum(std, period):
    if std > 20 * period:  # the brute-force reference itself needs > 4000 terms there
        pytest.skip("reference sum too short")
    x = np.linspace(-2.3 * period, 2.1 * period, 97)
    ref = brute_force_log_prob(x, 0.3 * period, std * period, period)
    got = wrapped_normal_log_prob(torch.tensor(x), 0.3 * period, std * period, period).numpy()
    np.testing.assert_allclose(got, ref, atol=1e-11, rtol=0)


@pytest.mark.parametrize("std", STDS)
def test_density_integrates_to_one(std):
    x = torch.linspace(0, 1, 20001, dtype=torch.float64)
    p = wrapped_normal_log_prob(x, 0.42, std, 1.0).exp()
    assert abs(float(torch.trapezoid(p, x)) - 1.0) < 1e-6


@pytest.mark.parametrize("std", STDS)
def test_score_is_gradient_of_log_prob(std):
    x = torch.linspace(-1.5, 1.5, 61, dtype=torch.float64, requires_grad=True)
    (g,) = torch.autograd.grad(wrapped_normal_log_prob(x, 0.1, std, 1.0).sum(), x)
    torch.testing.assert_close(wrapped_normal_score(x.detach(), 0.1, std, 1.0), g, rtol=1e-9, atol=1e-9)


def test_large_std_is_uniform_and_small_std_is_gaussian():
    x = torch.linspace(0, 3, 31, dtype=torch.float64)
    torch.testing.assert_close(wrapped_normal_log_prob(x, 0.0, 150.0, 3.0), torch.full_like(x, -math.log(3.0)))
    d = torch.linspace(-0.05, 0.05, 11, dtype=torch.float64)
    gauss = -0.5 * (d / 0.01) ** 2 - 0.5 * math.log(2 * math.pi * 1e-4)
    torch.testing.assert_close(wrapped_normal_log_prob(0.5 + d, 0.5, 0.01, 1.0), gauss)


def test_truncation_bound_is_tiny_everywhere():
    for std in np.geomspace(1e-3, 1e3, 200):
        assert truncation_error_bound(float(std), 1.0) < 1e-16


def test_wrap_helpers():
    x = torch.tensor([-1.25, -0.5, 0.0, 0.49, 0.5, 1.75, 3.0])
    torch.testing.assert_close(wrap(x, 1.0), torch.tensor([0.75, 0.5, 0.0, 0.49, 0.5, 0.75, 0.0]))
    c = wrap_centered(x, 1.0)
    assert (c >= -0.5).all() and (c <= 0.5).all()
    torch.testing.assert_close(wrap(c, 1.0), wrap(x, 1.0))
