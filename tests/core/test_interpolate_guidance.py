import pytest
import torch

from digmat.core import (
    Diffusion,
    ODEConfig,
    ProductMixture,
    StateSpace,
    gaussian_property_likelihood,
    guided_score,
    interpolate,
    interpolate_latents,
    sample_ode,
    sample_sde,
)

from .targets import TARGETS


def three_wells() -> ProductMixture:
    """Wells A(-2,0), B(2,0) and a bridge C(0,1.5): the straight A-B line crosses an empty gap."""
    d = Diffusion(StateSpace.euclidean(2))
    means = torch.tensor([[-2.0, 0.0], [2.0, 0.0], [0.0, 1.5]])
    return ProductMixture(d, torch.tensor([0.35, 0.35, 0.3]), means, torch.full((3, 2), 0.4))


@pytest.mark.parametrize("mode", ["linear", "spherical"])
def test_latent_path_avoids_the_low_density_gap(mode):
    mix = three_wells()
    xa, xb = mix.means[0], mix.means[1]
    out = interpolate(mix.diffusion, mix.score_fn(), xa, xb, num_points=101, mode=mode)
    torch.testing.assert_close(out.path[0], xa, atol=1e-3, rtol=0)
    torch.testing.assert_close(out.path[-1], xb, atol=1e-3, rtol=0)
    f = torch.linspace(0, 1, 101, dtype=torch.float64).unsqueeze(1)
    straight_min = float(mix.log_prob(xa + f * (xb - xa)).min())
    latent_min = float(mix.log_prob(out.path).min())
    # measured: latent -4.6 (linear) / -5.0 (spherical) vs straight line -8.3 nats
    assert latent_min > straight_min + 2.0, (latent_min, straight_min)


def test_periodic_latents_take_the_short_arc():
    d = TARGETS["torus"]().diffusion
    za = torch.tensor([0.95, 0.5], dtype=torch.float64)
    zb = torch.tensor([0.05, 0.5], dtype=torch.float64)
    path = interpolate_latents(d, za, zb, torch.linspace(0, 1, 5, dtype=torch.float64))
    torch.testing.assert_close(path[:, 0], torch.tensor([0.95, 0.975, 0.0, 0.025, 0.05], dtype=torch.float64))


def test_spherical_interpolation_keeps_latent_norm():
    d = Diffusion(StateSpace.euclidean(16))
    g = torch.Generator().manual_seed(0)
    za, zb = torch.randn(2, 16, generator=g, dtype=torch.float64)
    zb = zb * za.norm() / zb.norm()
    path = interpolate_latents(d, za, zb, torch.linspace(0, 1, 9, dtype=torch.float64), mode="spherical")
    torch.testing.assert_close(path.norm(dim=1), za.norm().expand(9))
    with pytest.raises(ValueError, match="mode"):
        interpolate_latents(d, za, zb, torch.tensor([0.5]), mode="cubic")


CONFUSION = torch.tensor([0.9, 0.2, 0.5], dtype=torch.float64)  # p(c = 1 | component k)


def exact_classifier(mix):
    """log p(c = 1 | x_t) = log sum_k pi_k p(k | x_t): exact at every t for the mixture."""
    return lambda x, t: torch.log(mix.component_posterior(x, t) @ CONFUSION.to(x))


@pytest.mark.parametrize("name", list(TARGETS))
@pytest.mark.parametrize("sampler", ["ode", "sde"])
def test_guided_sampling_reproduces_the_posterior(name, sampler):
    mix = TARGETS[name]()
    d = mix.diffusion
    score = guided_score(mix.score_fn(), exact_classifier(mix), scale=1.0)
    g = torch.Generator().manual_seed(21)
    if sampler == "ode":
        x = sample_ode(d, score, 4000, ODEConfig("heun", 25), generator=g, dtype=torch.float64).x
    else:
        x = sample_sde(d, score, 2500, steps=400, generator=g, dtype=torch.float64).x
    posterior = mix.weights * CONFUSION
    posterior = posterior / posterior.sum()  # (0.738, 0.098, 0.164)
    labels = mix.component_posterior(x).argmax(1)
    got = torch.bincount(labels, minlength=3).double() / x.shape[0]
    assert float((got - posterior).abs().max()) < 0.03, (got, posterior)


def test_gaussian_property_likelihood_steers_to_target():
    """Guide x_0 of the Euclidean mixture towards the property x[0] = +2 with a Tweedie predictor."""
    mix = TARGETS["euclidean"]()
    d = mix.diffusion
    ll = gaussian_property_likelihood(lambda x0: x0[:, 0], 2.0, 0.5, diffusion=d, score_fn=mix.score_fn(), on="denoised")
    g = torch.Generator().manual_seed(5)
    free = sample_ode(d, mix.score_fn(), 1000, ODEConfig("heun", 20), generator=g, dtype=torch.float64).x
    guided = sample_ode(d, guided_score(mix.score_fn(), ll, 1.0), 1000, ODEConfig("heun", 20), generator=g, dtype=torch.float64).x
    near = lambda x: float(((x[:, 0] - 2.0).abs() < 0.75).double().mean())  # noqa: E731
    assert near(guided) > 2 * near(free)
    with pytest.raises(ValueError, match="width"):
        gaussian_property_likelihood(lambda x: x, 1.0, 0.0)
    with pytest.raises(ValueError, match="denoised"):
        gaussian_property_likelihood(lambda x: x, 1.0, 1.0, on="denoised")
    bad = guided_score(mix.score_fn(), lambda x, t: x, 1.0)
    with pytest.raises(ValueError, match="log_likelihood must return"):
        bad(torch.zeros(3, 2, dtype=torch.float64), torch.full((3,), 0.5, dtype=torch.float64))
