import pytest
import torch

from digmat.core import NoiseSchedule

KINDS = ["linear", "cosine", "sigmoid"]


@pytest.mark.parametrize("kind", KINDS)
def test_beta_is_minus_twice_dlogalpha_dt(kind):
    s = NoiseSchedule(kind)
    t = torch.linspace(0.01, 0.99, 17, dtype=torch.float64, requires_grad=True)
    (g,) = torch.autograd.grad(s.log_alpha(t).sum(), t)
    torch.testing.assert_close(-2 * g, s.beta(t.detach()), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("kind", KINDS)
def test_variance_preserving_and_prior(kind):
    s = NoiseSchedule(kind)
    t = torch.linspace(0, 1, 101, dtype=torch.float64)
    torch.testing.assert_close(s.alpha(t) ** 2 + s.sigma(t) ** 2, torch.ones_like(t))
    assert float(s.alpha(t[0])) == 1.0
    assert float(s.alpha(t[-1])) < 0.01  # x_1 is N(0, I) to within 1%
    assert (s.alpha(t)[1:] < s.alpha(t)[:-1]).all()


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("power", [1.0, 3.0])
def test_discrete_chain_matches_continuous_alpha(kind, power):
    """DiG's alpha_i = prod_j sqrt(1 - beta_j) reproduces alpha(t_i) on the grid (uniform or not)."""
    s = NoiseSchedule(kind)
    chain = s.discretize(500, power=power)
    prod = torch.cumprod(torch.sqrt(1 - chain["beta"]), 0)
    torch.testing.assert_close(prod, chain["alpha"], rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(chain["sigma"], torch.sqrt(1 - chain["alpha"] ** 2))
    assert (chain["beta"][1:] > 0).all() and (chain["beta"] < 1).all()


def test_grid_power_places_steps_at_low_noise():
    s = NoiseSchedule("linear", t_min=1e-3)
    uniform, dense = s.discretize(200)["t"], s.discretize(200, power=3.0)["t"]
    for t in (uniform, dense):
        assert t[0] == 0 and abs(float(t[1]) - 1e-3) < 1e-15 and t[-1] == 1 and (t.diff() > 0).all()
    u = torch.linspace(0, 1, 200, dtype=torch.float64)
    torch.testing.assert_close(dense[1:], 1e-3 + (1 - 1e-3) * u**3)
    torch.testing.assert_close(uniform[1:], torch.linspace(1e-3, 1, 200, dtype=torch.float64))
    # u^3 < 0.1 for u < 0.1^(1/3): 0.464 of the steps instead of 0.099
    assert int((dense < 0.1).sum()) == 1 + 93 and int((uniform < 0.1).sum()) == 1 + 20
    with pytest.raises(ValueError, match="power"):
        s.discretize(10, power=0.0)


def test_linear_matches_ddpm_betas():
    """beta_min=0.1, beta_max=20 over 1000 steps are DDPM's linspace(1e-4, 2e-2) to first order
    (the exact discrete beta is 1 - exp(-int beta dt), 1% below at the end)."""
    chain = NoiseSchedule("linear", t_min=1e-3).discretize(1000)
    assert abs(float(chain["beta"][1]) - 1e-4) < 2e-5
    assert abs(float(chain["beta"][-1]) / 2e-2 - 1) < 0.02


@pytest.mark.parametrize("kind", KINDS)
def test_sigma_tilde_inverse(kind):
    s = NoiseSchedule(kind)
    t = torch.tensor([1e-3, 0.01, 0.3, 0.77, 1.0], dtype=torch.float64)
    torch.testing.assert_close(s.t_of_sigma_tilde(s.sigma_tilde(t)), t, rtol=1e-9, atol=1e-12)


def test_bad_schedules_are_refused():
    with pytest.raises(ValueError, match="unknown schedule"):
        NoiseSchedule("quadratic")
    with pytest.raises(ValueError, match="beta_min"):
        NoiseSchedule(beta_min=5.0, beta_max=1.0)
    with pytest.raises(ValueError, match="t_min"):
        NoiseSchedule(t_min=0.0)
