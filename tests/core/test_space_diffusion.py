import math

import pytest
import torch

from digmat.core import Diffusion, NoiseSchedule, StateSpace, denoising_profile, dsm_loss, wrapped_normal_log_prob

from .targets import TARGETS, mixed_mixture


def test_state_space_validation_and_prior():
    space = StateSpace((4, 3), period=torch.tensor([1.0, 1.0, 0.0]))
    assert space.numel == 12 and space.num_euclidean == 4 and space.has_torus
    g = torch.Generator().manual_seed(1)
    z = space.sample_prior(20000, generator=g, dtype=torch.float64)
    periodic, euclid = z[..., :2], z[..., 2]
    assert periodic.min() >= 0 and periodic.max() < 1
    assert abs(float(periodic.mean()) - 0.5) < 0.01 and abs(float(euclid.std()) - 1) < 0.02
    # prior density: standard normal on the 4 Euclidean entries, uniform (log 1 = 0) elsewhere
    x = torch.zeros(1, 4, 3, dtype=torch.float64)
    assert float(space.prior_log_prob(x)) == pytest.approx(-4 * 0.5 * math.log(2 * math.pi))
    with pytest.raises(ValueError, match="expected"):
        space.check(torch.zeros(2, 3, 3))
    with pytest.raises(ValueError, match="NaN"):
        space.check(torch.full((1, 4, 3), float("nan")))
    with pytest.raises(ValueError, match="broadcast"):
        StateSpace((4, 3), period=torch.ones(2))
    with pytest.raises(ValueError, match=">= 0"):
        StateSpace((2,), period=torch.tensor([-1.0, 0.0]))


def test_difference_is_shortest_arc():
    space = StateSpace((2,), period=torch.tensor([1.0, 0.0]))
    d = space.difference(torch.tensor([[0.95, 3.0]]), torch.tensor([[0.05, 1.0]]))
    torch.testing.assert_close(d, torch.tensor([[-0.1, 2.0]]))


def test_perturb_has_the_stated_marginal():
    """x_t | x_0: N(alpha x_0, sigma^2) on Euclidean, WN(x_0, (c sigma_tilde)^2) on periodic entries."""
    space = StateSpace((2,), period=torch.tensor([0.0, 2.0]))
    d = Diffusion(space)
    n = 200_000
    x0 = torch.tensor([[1.5, 0.3]], dtype=torch.float64).expand(n, 2)
    t = torch.full((n,), 0.2, dtype=torch.float64)
    g = torch.Generator().manual_seed(3)
    xt, _ = d.perturb(x0, t, generator=g)
    a, s = d.schedule.alpha(t[0]), d.schedule.sigma(t[0])
    assert abs(float(xt[:, 0].mean() - a * 1.5)) < 4 * s / math.sqrt(n)
    assert abs(float(xt[:, 0].std() / s) - 1) < 0.01
    assert xt[:, 1].min() >= 0 and xt[:, 1].max() < 2
    # periodic entry: histogram against the wrapped-normal density
    std = 2.0 * float(d.schedule.sigma_tilde(t[0]))
    hist = torch.histc(xt[:, 1], bins=20, min=0, max=2) / n / 0.1
    centers = torch.linspace(0.05, 1.95, 20, dtype=torch.float64)
    ref = wrapped_normal_log_prob(centers, 0.3, std, 2.0).exp()
    assert float((hist - ref).abs().max()) < 0.05


def test_conditional_score_is_gradient_of_transition_density():
    mix = mixed_mixture()
    d = mix.diffusion
    g = torch.Generator().manual_seed(0)
    x0, _ = mix.sample(64, generator=g)
    t = torch.rand(64, generator=g, dtype=torch.float64) * 0.9 + 0.05
    xt, _ = d.perturb(x0, t, generator=g)
    # the transition density is a one-component ProductMixture centred on x_0 with ~zero width
    xt_req = xt.clone().requires_grad_(True)
    std = d.noise_std(t, xt)
    periodic = wrapped_normal_log_prob(xt_req[:, :2], x0[:, :2], std[:, :2], 2.5).sum(1)
    a = d.signal_coef(t, xt)[:, 2]
    euclid = -0.5 * ((xt_req[:, 2] - a * x0[:, 2]) / std[:, 2]) ** 2
    (grad,) = torch.autograd.grad((periodic + euclid).sum(), xt_req)
    torch.testing.assert_close(d.conditional_score(xt, x0, t), grad, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("name", list(TARGETS))
def test_exact_marginal_score_minimises_dsm(name):
    """DSM is minimised by the true marginal score: scaling or shifting it raises the loss."""
    mix = TARGETS[name]()
    d = mix.diffusion
    g = torch.Generator().manual_seed(5)
    x0, _ = mix.sample(40_000, generator=g)
    t = d.sample_time(40_000, generator=g, dtype=torch.float64)
    state = g.get_state()

    def loss_of(model, param="score"):
        g.set_state(state)
        return float(dsm_loss(d, model, x0, t=t, generator=g, parameterization=param).loss)

    exact = loss_of(lambda x, tt: mix.score(x, tt))
    for factor in (0.8, 1.2):
        assert loss_of(lambda x, tt: factor * mix.score(x, tt)) > exact * 1.005
    assert loss_of(lambda x, tt: mix.score(x, tt) + 0.3) > exact * 1.005
    # the eps parameterization of the same model gives the same loss
    eps_model = lambda x, tt: d.score_to_eps(mix.score(x, tt), tt)  # noqa: E731
    assert loss_of(eps_model, "eps") == pytest.approx(exact, rel=1e-9)


def test_dsm_mask_and_errors():
    d = Diffusion(StateSpace.euclidean(3, 2))
    x0 = torch.randn(8, 3, 2)
    mask = torch.ones(8, 3, 2)
    mask[:, 2] = 0
    model = lambda x, t: torch.zeros_like(x)  # noqa: E731
    out = dsm_loss(d, model, x0, mask=mask)
    assert out.per_sample.shape == (8,) and torch.isfinite(out.loss)
    with pytest.raises(ValueError, match="parameterization"):
        dsm_loss(d, model, x0, parameterization="velocity")
    with pytest.raises(ValueError, match="output has shape"):
        dsm_loss(d, lambda x, t: x[:, :2], x0)


def test_uniform_gate_discards_only_negligible_periodic_signal():
    """Where the gate is below 1, the exact conditional noise prediction of a periodic entry,
    -std * grad log p(x_t | x_0) (wrapped-normal series), is already tiny, whatever x_0; the
    gate is 1 on Euclidean entries and at low noise, 0 at t = 1."""
    space = StateSpace((3,), period=torch.tensor([1.0, 2.5, 0.0]), noise_scale=torch.tensor([0.12, 0.3, 1.0]))
    diff = Diffusion(space)
    gen = torch.Generator().manual_seed(0)
    t = torch.linspace(1e-3, 1.0, 2001, dtype=torch.float64)
    x0 = torch.rand(t.shape[0], 3, generator=gen, dtype=torch.float64) * torch.tensor([1.0, 2.5, 1.0], dtype=torch.float64)
    xt, _ = diff.perturb(x0, t, generator=gen)
    gate = diff.uniform_gate(t, xt)
    exact_eps = -diff.noise_std(t, xt) * diff.conditional_score(xt, x0, t)
    assert torch.all(gate[:, 2] == 1.0)
    assert torch.all(gate[t < 0.05, :2] == 1.0) and torch.all(gate[-1, :2] < 1e-12)
    assert ((gate[:, :2] > 0) & (gate[:, :2] < 1)).any(), "the taper must be crossed on this grid"
    lost = ((1 - gate[:, :2]) * exact_eps[:, :2]).abs().max()
    assert lost < 0.03, float(lost)
    # ... whereas switching off earlier would throw away real signal.
    early = diff.uniform_gate(t, xt, start=0.1, end=0.2)
    assert ((1 - early[:, :2]) * exact_eps[:, :2]).abs().max() > 0.3


def test_denoising_profile_of_the_exact_gaussian_denoiser():
    """For N(0, I) data the optimal eps prediction is sigma x_t, with relative error alpha^2;
    a point mass is denoised exactly; predicting zero scores 1."""
    diffusion = Diffusion(StateSpace((3,)), NoiseSchedule())
    gen = torch.Generator().manual_seed(0)
    x0 = torch.randn(4000, 3, generator=gen, dtype=torch.float64)
    times = torch.tensor([0.05, 0.2, 0.5])
    sigma = lambda t: diffusion.schedule.sigma(t)[:, None]  # noqa: E731
    profile = denoising_profile(diffusion, lambda x, t: sigma(t) * x, x0, times, generator=gen)
    alpha2 = diffusion.schedule.alpha(times.double()) ** 2
    torch.testing.assert_close(profile.relative()["all"], alpha2, atol=0.03, rtol=0.0)
    zero = denoising_profile(diffusion, lambda x, t: torch.zeros_like(x), x0, times, generator=gen)
    torch.testing.assert_close(zero.relative()["all"], torch.ones(3, dtype=torch.float64))
    point = torch.zeros(16, 3, dtype=torch.float64)
    exact = denoising_profile(diffusion, lambda x, t: x / sigma(t), point, times, groups={"first": torch.tensor([1.0, 0, 0])}, generator=gen)
    assert float(exact.relative()["first"].max()) < 1e-12
    both = exact.merge(exact)
    torch.testing.assert_close(both.error["first"], 2 * exact.error["first"])


def test_sample_time_power_moves_mass_to_low_noise():
    diffusion = Diffusion(StateSpace((1,)), NoiseSchedule(t_min=1e-3))
    gen = torch.Generator().manual_seed(0)
    for power in (1.0, 3.0):
        t = diffusion.sample_time(20000, power=power, generator=gen, dtype=torch.float64)
        assert float(t.min()) >= 1e-3 and float(t.max()) <= 1.0
        u = (0.1 - 1e-3) / (1 - 1e-3)
        assert abs(float((t < 0.1).double().mean()) - u ** (1 / power)) < 0.01  # P(t < 0.1) = u^(1/p)
    with pytest.raises(ValueError, match="power"):
        diffusion.sample_time(4, power=0.0)
