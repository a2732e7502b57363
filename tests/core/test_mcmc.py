"""MALA leaves the target invariant (Euclidean and periodic entries) and counts its evaluations."""

import math

import pytest
import torch

from digmat.core import StateSpace, mala

from .targets import TARGETS


def _weights(mix, x):
    return torch.bincount(mix.component_posterior(x).argmax(1), minlength=mix.num_components).double() / x.shape[0]


@pytest.mark.parametrize("name, h", [("euclidean", 0.02), ("torus", 5e-4), ("mixed", 2e-3)])
def test_exact_samples_stay_exact(name, h):
    """Started from the target itself, 30 steps must not move the mode weights or the moments."""
    mix = TARGETS[name]()
    x0, _ = mix.sample(4000, generator=torch.Generator().manual_seed(0))
    out = mala(mix.diffusion.space, lambda x: mix.log_prob(x), x0, steps=30, step_size=h, generator=torch.Generator().manual_seed(1))
    assert out.evaluations == 4000 * 31
    assert 0.3 < float(out.acceptance.mean()) < 1.0
    assert (_weights(mix, out.x) - _weights(mix, x0)).abs().max() < 0.03
    moved = (mix.diffusion.space.difference(out.x, x0).abs() > 1e-12).any(1).double().mean()
    assert moved > 0.9
    space = mix.diffusion.space
    for j in range(x0.shape[1]):  # first moments (circular on periodic entries) within 4 s.e.
        if bool(space.torus_mask()[j]):
            ang = lambda v: torch.exp(1j * 2 * math.pi * v[:, j] / float(space.periods(v)[j]))  # noqa: E731
            a, b = ang(out.x), ang(x0)
            assert abs(complex(a.mean() - b.mean())) < 4 * (2 / 4000) ** 0.5
        else:
            assert abs(float(out.x[:, j].mean() - x0[:, j].mean())) < 4 * float(x0[:, j].std()) * (2 / 4000) ** 0.5


def test_gaussian_variance_from_a_bad_start():
    """From a point, chains reach N(0, 0.25) in 1-D (analytic target, moments to 4 s.e.)."""
    space = StateSpace.euclidean(1)
    out = mala(space, lambda x: -2.0 * x[:, 0] ** 2, torch.full((3000, 1), 2.0, dtype=torch.float64), steps=200,
               step_size=0.1, generator=torch.Generator().manual_seed(3))
    assert abs(float(out.x.mean())) < 4 * 0.5 / 3000**0.5
    assert abs(float(out.x.var()) - 0.25) < 4 * 0.25 * (2 / 3000) ** 0.5


def test_adaptation_moves_step_sizes_and_bad_input_is_refused():
    space = StateSpace.euclidean(2)
    target = lambda x: -0.5 * (x**2).sum(-1) / 0.01  # noqa: E731 — sharp: h = 1 is far too large
    out = mala(space, target, torch.zeros(64, 2, dtype=torch.float64), steps=100, step_size=1.0, adapt=True,
               generator=torch.Generator().manual_seed(0))
    assert float(out.step_size.median()) < 0.1
    with pytest.raises(ValueError, match="step_size"):
        mala(space, target, torch.zeros(4, 2), steps=1, step_size=0.0)
    with pytest.raises(ValueError, match="not finite"):
        mala(space, lambda x: torch.log(x[:, 0]), torch.full((4, 2), -1.0), steps=1)


def test_a_diagonal_preconditioner_keeps_the_target_and_evens_out_the_entries():
    """Entries 100x apart in scale: with M = their variances one step size fits both, chains reach
    the analytic N(0, diag(1e-4, 1)) from a point, and exact samples stay exact."""
    space = StateSpace.euclidean(2)
    var = torch.tensor([1e-4, 1.0], dtype=torch.float64)
    target = lambda x: -0.5 * (x**2 / var).sum(-1)  # noqa: E731
    start = torch.tensor([[0.02, 2.0]], dtype=torch.float64).expand(3000, 2)
    out = mala(space, target, start, steps=150, step_size=0.3, preconditioner=var, generator=torch.Generator().manual_seed(4))
    for j in range(2):
        assert abs(float(out.x[:, j].var()) / float(var[j]) - 1) < 4 * (2 / 3000) ** 0.5
        assert abs(float(out.x[:, j].mean())) < 4 * float(var[j].sqrt()) / 3000**0.5
    plain = mala(space, target, start, steps=150, step_size=0.3 * 1e-4, generator=torch.Generator().manual_seed(4))
    assert abs(float(plain.x[:, 1].mean())) > 1.0          # without it, the wide entry has barely moved
    with pytest.raises(ValueError, match="preconditioner"):
        mala(space, target, start, steps=1, preconditioner=torch.tensor([1.0, 0.0], dtype=torch.float64))
