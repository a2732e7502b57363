"""The pooled DSM target (:func:`digmat.core.pooled_target`) against the analytic mixtures of
``targets.py``: with a large pool it is the exact diffused score; with one point it is the DSM
target of that point; and it is much closer to the exact score than the DSM target it replaces."""

import pytest
import torch

from digmat.core import noise_batch, pooled_target

from .targets import TARGETS


@pytest.mark.parametrize("name", sorted(TARGETS))
@pytest.mark.parametrize("t", [0.1, 0.2, 0.3])
def test_a_large_pool_gives_the_exact_score_and_beats_the_dsm_target(name, t):
    mix = TARGETS[name]()
    pool, _ = mix.sample(4000, generator=torch.Generator().manual_seed(0))
    x0, _ = mix.sample(256, generator=torch.Generator().manual_seed(1))
    noised = noise_batch(mix.diffusion, x0, t=torch.full((256,), t, dtype=torch.float64),
                         generator=torch.Generator().manual_seed(2))
    exact = mix.score(noised.xt, noised.t)
    pooled = pooled_target(mix.diffusion, noised, pool).target
    scale = exact.pow(2).mean()
    pooled_error = (pooled - exact).pow(2).mean() / scale
    dsm_error = (noised.target - exact).pow(2).mean() / scale
    assert pooled_error < 0.01, (pooled_error, dsm_error)
    assert pooled_error < 0.05 * dsm_error


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_a_one_point_pool_gives_that_points_dsm_target(name):
    mix = TARGETS[name]()
    x0, _ = mix.sample(1, generator=torch.Generator().manual_seed(3))
    x0 = x0.expand(64, *x0.shape[1:])
    t = torch.linspace(0.05, 0.9, 64, dtype=torch.float64)
    noised = noise_batch(mix.diffusion, x0, t=t, generator=torch.Generator().manual_seed(4))
    pooled = pooled_target(mix.diffusion, noised, x0[:1]).target
    torch.testing.assert_close(pooled, noised.target, rtol=1e-4, atol=1e-6)


def test_a_pool_of_the_wrong_shape_is_an_error():
    mix = TARGETS["mixed"]()
    x0, _ = mix.sample(4, generator=torch.Generator().manual_seed(5))
    noised = noise_batch(mix.diffusion, x0, generator=torch.Generator().manual_seed(6))
    with pytest.raises(ValueError, match="pool must have shape"):
        pooled_target(mix.diffusion, noised, x0[:, :2])
