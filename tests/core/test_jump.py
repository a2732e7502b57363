"""Mode-jumping independence moves (:class:`digmat.core.MixtureJump`, :func:`digmat.core.mixture_jump`)
against quadrature: the proposal's density is normalised and is what it samples, and a chain
that MALA leaves stuck behind a 16 kT barrier reaches the exact populations — even with
centres placed off the wells, since the Metropolis–Hastings ratio, not the centres, makes it exact."""

import math

import pytest
import torch

from digmat.core import MixtureJump, StateSpace, mixture_jump, replica_exchange_mala

# state (theta, z): theta on a circle of period 1, z Euclidean
SPACE = StateSpace((2,), period=torch.tensor([1.0, 0.0], dtype=torch.float64))
SKEW = 1.0        # wells at theta = 0.25 (E = +SKEW) and 0.75 (E = -SKEW), barrier ~ 16


def energy(x):
    theta, z = x[:, 0], x[:, 1]
    return 8.0 * torch.cos(4 * math.pi * theta) + SKEW * torch.sin(2 * math.pi * theta) + 0.5 * ((z - 0.5) / 0.2) ** 2


def exact_right_well(beta: float = 1.0) -> float:
    theta = torch.linspace(0, 1, 400001, dtype=torch.float64)[:-1]
    e = 8.0 * torch.cos(4 * math.pi * theta) + SKEW * torch.sin(2 * math.pi * theta)
    w = torch.exp(-beta * (e - e.min()))
    return float(w[theta > 0.5].sum() / w.sum())


def make_jump(uniform: float = 0.1, centres=((0.2, 0.3), (0.8, 0.3))) -> MixtureJump:
    f64 = dict(dtype=torch.float64)
    return MixtureJump(index=torch.tensor([0, 1]), centres=torch.tensor(centres, **f64), scale=torch.tensor([0.08, 0.3], **f64),
                       low=torch.tensor([0.0, -1.0], **f64), high=torch.tensor([1.0, 2.0], **f64), uniform=uniform)


@pytest.mark.parametrize("uniform", [0.0, 0.2])
def test_the_proposal_density_is_normalised_and_is_what_it_samples(uniform):
    jump = make_jump(uniform, centres=((0.95, 0.3), (0.5, -0.5)))       # one centre straddles the wrap at theta = 0
    theta = torch.linspace(0, 1, 401, dtype=torch.float64)[:-1] + 1 / 800
    z = torch.linspace(-4, 5, 901, dtype=torch.float64)
    grid = torch.cartesian_prod(theta, z)
    q = torch.exp(jump.log_prob(SPACE, grid))
    cell = (1 / 400) * float(z[1] - z[0])
    assert abs(float(q.sum()) * cell - 1.0) < 2e-3
    draws = jump.sample(SPACE, 100_000, grid, torch.Generator().manual_seed(0))
    assert ((draws[:, 0] >= 0) & (draws[:, 0] < 1)).all()
    for region in (lambda y: (y[:, 0] < 0.05) & (y[:, 1] < 0.3), lambda y: (y[:, 0] > 0.4) & (y[:, 0] < 0.6),
                   lambda y: y[:, 1] > 1.5):
        expected = float(q[region(grid)].sum()) * cell
        got = float(region(draws).double().mean())
        assert abs(got - expected) < 4 * math.sqrt(expected * (1 - expected) / draws.shape[0]) + 2e-3, (got, expected)


def test_jumps_reach_the_exact_populations_where_mala_alone_is_stuck():
    start = torch.tensor([[0.25, 0.5]], dtype=torch.float64).repeat(64, 1)     # every chain in the less probable well
    kwargs = dict(sweeps=300, burn_in=50, step_size=1e-3, generator=torch.Generator().manual_seed(0))
    alone = replica_exchange_mala(SPACE, energy, start, [1.0], **kwargs)
    right = exact_right_well()
    assert right > 0.8 and float((alone.samples[0, ..., 0] > 0.5).double().mean()) < 0.05
    assert torch.isnan(alone.jump_acceptance).all()
    kwargs["generator"] = torch.Generator().manual_seed(0)
    out = replica_exchange_mala(SPACE, energy, start, [1.0], jump=make_jump(), **kwargs)
    got = float((out.samples[0, ..., 0] > 0.5).double().mean())
    assert abs(got - right) < 0.04, (got, right)
    assert abs(float(out.samples[0, ..., 1].mean()) - 0.5) < 0.03 and abs(float(out.samples[0, ..., 1].std()) - 0.2) < 0.02
    assert 0.05 < float(out.jump_acceptance[0]) < 0.9
    assert out.evaluations == 64 * (1 + 2 * 300)
    assert torch.allclose(out.energy, energy(out.samples.reshape(-1, 2)).reshape(out.energy.shape))


def test_a_run_with_jumps_continued_in_pieces_reproduces_the_uninterrupted_run():
    start = torch.tensor([[0.25, 0.5]], dtype=torch.float64).repeat(4, 1)
    betas = [1.0, 0.5]
    common = dict(jump=make_jump(), jump_every=3, step_size=1e-3)
    whole = replica_exchange_mala(SPACE, energy, start, betas, sweeps=20, burn_in=5, generator=torch.Generator().manual_seed(3), **common)
    gen = torch.Generator().manual_seed(3)
    parts, x, known, h, done = [], start, None, 1e-3, 0
    for sweeps, burn_in in ((4, 4), (7, 1), (9, 0)):
        out = replica_exchange_mala(SPACE, energy, x, betas, sweeps=sweeps, burn_in=burn_in, start=known, first_sweep=done,
                                    generator=gen, **{**common, "step_size": h})
        parts.append(out)
        x, known, h, done = out.final, (out.final_energy, out.final_grad), out.step_size, done + sweeps
    assert torch.equal(torch.cat([p.samples for p in parts], 1), whole.samples)
    assert sum(p.evaluations for p in parts) == whole.evaluations
    assert sum(p.jump_sweeps for p in parts) == whole.jump_sweeps == 5          # recorded sweeps 6, 9, 12, 15, 18


def test_a_jump_into_infinite_energy_is_rejected():
    walled = lambda x: torch.where(x[:, 0] > 0.5, torch.full_like(x[:, 0], float("inf")), energy(x))  # noqa: E731
    x = torch.tensor([[0.25, 0.5]], dtype=torch.float64).repeat(256, 1)
    out = mixture_jump(SPACE, lambda y: -walled(y), x, make_jump(), generator=torch.Generator().manual_seed(1))
    assert (out.x[:, 0] <= 0.5).all() and torch.isfinite(out.log_target).all() and out.accepted.any()
    assert out.evaluations == 2 * 256


@pytest.mark.parametrize("change, message", [
    ({"index": torch.tensor([0.0, 1.0])}, "index"),
    ({"centres": torch.zeros(2, 3, dtype=torch.float64)}, "centres"),
    ({"scale": torch.tensor([0.1, 0.0], dtype=torch.float64)}, "scale must be > 0"),
    ({"uniform": 1.0}, "uniform"),
    ({"high": torch.tensor([1.0, -2.0], dtype=torch.float64)}, "high > low"),
    ({"low": torch.zeros(3, dtype=torch.float64)}, "low must have shape"),
])
def test_bad_proposals_are_refused(change, message):
    jump = make_jump()
    fields = {k: getattr(jump, k) for k in ("index", "centres", "scale", "low", "high", "uniform")}
    with pytest.raises(ValueError, match=message):
        MixtureJump(**{**fields, **change})
