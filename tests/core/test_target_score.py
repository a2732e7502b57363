"""Target score matching blended with DSM (:func:`digmat.core.target_score_loss`) and the
Metropolis corrector on a log-density model (:func:`digmat.core.metropolis_corrector`).

The loss's minimiser is the exact diffused score: at the exact score of the analytic mixtures
of ``targets.py`` the loss's first-order change along any perturbation delta(x_t, t),
2 E[w delta (s* - target)], vanishes (to Monte-Carlo error), on Euclidean, periodic and mixed
states; a wrong target score (scaled by 0.7) is detected by the same statistic.
"""

import pytest
import torch
from torch import nn

from digmat.core import (PIDPConfig, StateSpace, dsm_loss, fit_pidp, metropolis_corrector,
                         pidp_loss, potential_score, target_score_loss)

from ..toy_models import ToyLogDensityMLP
from .targets import TARGETS


def _first_order(mix, grad_factor: float, n: int = 20000, *, tensor_scale: bool = False) -> list[tuple[float, float]]:
    """Mean and standard error of the per-sample derivative of the loss along three perturbations.

    ``tensor_scale``: g per entry (its root mean square) and per sample (a random factor in
    [0.5, 2] drawn independently of the sample, like 1 / kT of a sample's temperature)."""
    d = mix.diffusion
    x0, _ = mix.sample(n, generator=torch.Generator().manual_seed(1))
    grad0 = mix.score(x0) * grad_factor
    scale = float(mix.score(x0).pow(2).mean().sqrt())
    if tensor_scale:
        factor = 0.5 + 1.5 * torch.rand(n, 1, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
        scale = mix.score(x0).pow(2).mean(0).sqrt() * factor
    t = d.sample_time(n, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    out = []
    for kind in ("ones", "state", "score"):
        eps = torch.zeros(n, dtype=torch.float64, requires_grad=True)

        def score_fn(xt, tt, kind=kind, eps=eps):
            exact = mix.score(xt, tt)
            delta = {"ones": torch.ones_like(xt), "state": torch.sin(xt), "score": exact}[kind]
            return exact + eps[:, None] * delta

        loss = target_score_loss(d, score_fn, x0, grad0, score_scale=scale, t=t, generator=torch.Generator().manual_seed(3))
        (deriv,) = torch.autograd.grad(loss.per_sample.sum(), eps)
        out.append((float(deriv.mean()), float(deriv.std() / n**0.5)))
    return out


@pytest.mark.parametrize("name", list(TARGETS))
def test_the_exact_score_is_the_minimiser(name):
    mix = TARGETS[name]()
    for mean, se in _first_order(mix, 1.0):
        assert abs(mean) < 4 * se, (mean, se)
    # the same statistic sees a wrong target score
    assert max(abs(mean) / se for mean, se in _first_order(mix, 0.7)) > 8


def test_a_per_entry_and_per_sample_scale_keeps_the_minimiser():
    mix = TARGETS["mixed"]()
    for mean, se in _first_order(mix, 1.0, tensor_scale=True):
        assert abs(mean) < 4 * se, (mean, se)
    assert max(abs(mean) / se for mean, se in _first_order(mix, 0.7, tensor_scale=True)) > 8


def test_arguments_are_checked():
    mix = TARGETS["euclidean"]()
    x0, _ = mix.sample(8, generator=torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match="grad0"):
        target_score_loss(mix.diffusion, mix.score_fn(), x0, x0[:, :1], score_scale=1.0)
    for bad in (0.0, -1.0, float("inf")):
        with pytest.raises(ValueError, match="score_scale"):
            target_score_loss(mix.diffusion, mix.score_fn(), x0, x0, score_scale=bad)
        with pytest.raises(ValueError, match="score_scale"):
            target_score_loss(mix.diffusion, mix.score_fn(), x0, x0, score_scale=torch.full((x0.shape[1],), bad))


def _fit(mix, objective: str, steps: int = 1000) -> ToyLogDensityMLP:
    torch.manual_seed(0)
    d = mix.diffusion
    x0, _ = mix.sample(4096, generator=torch.Generator().manual_seed(0))
    grad0 = mix.score(x0)
    scale = float(grad0.pow(2).mean().sqrt())
    model = ToyLogDensityMLP(d).double()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    gen = torch.Generator().manual_seed(1)
    score = potential_score(model, create_graph=True)
    for _ in range(steps):
        idx = torch.randint(0, x0.shape[0], (256,), generator=gen)
        if objective == "tsm":
            loss = target_score_loss(d, score, x0[idx], grad0[idx], score_scale=scale, generator=gen).loss
        else:
            loss = dsm_loss(d, score, x0[idx], parameterization="score", generator=gen).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model


def test_low_noise_scores_are_learnt_far_better_than_by_dsm():
    """Same model, samples and 1,000 steps: DSM's low-noise score error is several times TSM's
    (measured relative errors at t = 1e-3 / 0.05 / 0.3: TSM 0.033 / 0.035 / 0.009, DSM 0.256 / 0.133 / 0.007)."""
    mix = TARGETS["euclidean"]()
    x0, _ = mix.sample(2000, generator=torch.Generator().manual_seed(5))
    t = torch.full((2000,), 1e-3, dtype=torch.float64)
    xt, _ = mix.diffusion.perturb(x0, t, generator=torch.Generator().manual_seed(6))
    exact = mix.score(xt, t)
    rel = {}
    for objective in ("tsm", "dsm"):
        model = _fit(mix, objective)
        rel[objective] = float(((potential_score(model)(xt, t) - exact) ** 2).sum() / (exact**2).sum())
    assert rel["tsm"] < 0.06 and rel["tsm"] < rel["dsm"] / 4, rel


class _GaussianLogDensity(nn.Module):
    """l(x, t) = -|x - mu|^2 / (2 s^2): an exact model density N(mu, s^2 I) at every t."""

    def __init__(self, mu: float, s: float):
        super().__init__()
        self.mu, self.s = mu, s
        self.dummy = nn.Parameter(torch.zeros(()))

    def forward(self, x, t):
        return -((x - self.mu) ** 2).sum(-1) / (2 * self.s**2) + 0 * t


def test_corrector_samples_the_models_own_density():
    space = StateSpace.euclidean(3)
    model = _GaussianLogDensity(mu=1.5, s=0.3).double()
    start = torch.full((4000, 3), -1.0, dtype=torch.float64)   # every chain starts far off, at one point
    out = metropolis_corrector(space, model, start, steps=400, step_size=0.01, generator=torch.Generator().manual_seed(0))
    assert out.evaluations == 4000 * (400 + 2)   # model calls: each of the two MALA legs evaluates its start
    assert (out.x.mean(0) - 1.5).abs().max() < 0.02                 # s.e. 0.005
    assert (out.x.std(0) / 0.3 - 1).abs().max() < 0.05              # s.e. ~0.011
    assert 0.4 < float(out.acceptance.mean()) < 0.75
    same = metropolis_corrector(space, model, start, steps=0, generator=torch.Generator().manual_seed(0))
    assert torch.equal(same.x, start)
    with pytest.raises(ValueError, match="steps"):
        metropolis_corrector(space, model, start, steps=-1)


def test_stored_target_values_are_not_evaluated_again():
    mix = TARGETS["euclidean"]()
    d = mix.diffusion

    def forbidden(x):
        raise AssertionError("the target was evaluated again")

    x0, _ = mix.sample(64, generator=torch.Generator().manual_seed(0))
    target = (mix.log_prob(x0), mix.score(x0))
    model = ToyLogDensityMLP(d).double()
    config = PIDPConfig(steps=3, batch_size=16, fpe_weight=0.0, tsm_weight=1.0, buffer_size=64, refresh_every=100)
    out = pidp_loss(d, model, x0, forbidden, config, target=target)
    assert out.evaluations == 0 and torch.isfinite(out.tsm) and torch.isnan(out.fpe)
    history = fit_pidp(d, model, forbidden, x0, config, init_target=target)
    assert history.evaluations == 0 and len(history.tsm) == 3
    with pytest.raises(ValueError, match="init_target"):
        fit_pidp(d, model, forbidden, x0, config, init_target=(target[0][:5], target[1]))
