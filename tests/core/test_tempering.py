"""Replica exchange with MALA moves (:func:`digmat.core.replica_exchange_mala`) against exact
quadrature on an asymmetric 1-D double well whose barrier (~10 kT at the coldest rung) plain MALA
does not cross in the same run."""

import math

import pytest
import torch

from digmat.core import StateSpace, replica_exchange_mala

A, C = 10.0, 1.0   # E = A (x^2 - 1)^2 + C x: wells at x ~ -1 (E ~ -1) and x ~ +1 (E ~ +1), barrier ~ A
BETAS = [1.0, 0.5, 0.25, 0.12, 0.06]


def energy(x):
    return A * (x[:, 0] ** 2 - 1) ** 2 + C * x[:, 0]


def exact(beta: float) -> tuple[float, float]:
    """Left-well population and mean energy at beta, by quadrature on [-3, 3]."""
    grid = torch.linspace(-3, 3, 200001, dtype=torch.float64)[:, None]
    e = energy(grid)
    w = torch.exp(-beta * (e - e.min()))
    return float(w[grid[:, 0] < 0].sum() / w.sum()), float((w * e).sum() / w.sum())


def test_populations_of_every_rung_match_quadrature_where_plain_mala_is_stuck():
    space = StateSpace.euclidean(1)
    start = torch.ones(200, 1, dtype=torch.float64)      # every chain in the right (less probable) well
    out = replica_exchange_mala(space, energy, start, BETAS, sweeps=800, burn_in=200, step_size=0.01,
                                generator=torch.Generator().manual_seed(0))
    assert out.samples.shape == (5, 600, 200, 1) and out.energy.shape == (5, 600, 200)
    assert out.evaluations == 5 * 200 * (1 + 800)
    assert torch.allclose(out.energy, energy(out.samples.reshape(-1, 1)).reshape(5, 600, 200))
    x = out.samples[:, ::50].reshape(-1, 1)     # gradients travel with the states through swaps
    exact_grad = 4 * A * x * (x**2 - 1) + C
    assert torch.allclose(out.energy_grad[:, ::50].reshape(-1, 1), exact_grad)
    for k, beta in enumerate(BETAS):
        left, mean_e = exact(beta)
        got = float((out.samples[k, ..., 0] < 0).double().mean())
        assert abs(got - left) < 0.04, (beta, got, left)
        assert abs(float(out.energy[k].mean()) - mean_e) < 0.1 * (1 + abs(mean_e)), (beta, float(out.energy[k].mean()), mean_e)
    assert (out.swap_acceptance > 0.2).all() and (out.acceptance > 0.3).all()
    # the coldest rung alone, same sweeps: stuck where it started
    alone = replica_exchange_mala(space, energy, start, BETAS[:1], sweeps=800, burn_in=200, step_size=0.01,
                                  generator=torch.Generator().manual_seed(0))
    assert exact(1.0)[0] > 0.8 and float((alone.samples[0, ..., 0] < 0).double().mean()) < 0.05
    assert math.isnan(float(alone.swap_acceptance.sum())) or alone.swap_acceptance.numel() == 0


def test_a_wall_of_infinite_energy_is_never_entered():
    space = StateSpace.euclidean(1)

    def walled(x):
        return torch.where(x[:, 0] > 1.3, torch.full_like(x[:, 0], float("inf")), energy(x))

    out = replica_exchange_mala(space, walled, torch.ones(50, 1, dtype=torch.float64), BETAS, sweeps=200, burn_in=50,
                                generator=torch.Generator().manual_seed(1))
    assert (out.samples <= 1.3).all() and torch.isfinite(out.energy).all()


def test_a_run_continued_in_pieces_reproduces_the_uninterrupted_run():
    space = StateSpace.euclidean(1)
    start = torch.ones(6, 1, dtype=torch.float64)
    whole = replica_exchange_mala(space, energy, start, BETAS, sweeps=31, burn_in=10, step_size=0.01,
                                  generator=torch.Generator().manual_seed(2))
    gen = torch.Generator().manual_seed(2)
    pieces, x, known, h, done = [], start, None, 0.01, 0
    for sweeps, burn_in in ((8, 8), (9, 2), (14, 0)):      # burn-in only, burn-in ending inside, recording only
        out = replica_exchange_mala(space, energy, x, BETAS, sweeps=sweeps, burn_in=burn_in, step_size=h, start=known,
                                    first_sweep=done, generator=gen)
        pieces.append(out)
        x, known, h, done = out.final, (out.final_energy, out.final_grad), out.step_size, done + sweeps
    assert pieces[0].samples.shape == (5, 0, 6, 1) and torch.isnan(pieces[0].acceptance).all()
    assert pieces[2].evaluations == 5 * 6 * 14          # a continued piece does not evaluate its start again
    assert torch.equal(torch.cat([p.samples for p in pieces], 1), whole.samples)
    assert torch.equal(torch.cat([p.energy_grad for p in pieces], 1), whole.energy_grad)
    assert sum(p.evaluations for p in pieces) == whole.evaluations
    assert torch.equal(pieces[-1].final, whole.final) and torch.equal(pieces[-1].final, whole.samples[:, -1])


@pytest.mark.parametrize("kwargs, message", [
    ({"betas": [1.0, 2.0]}, "decreasing"),
    ({"betas": [1.0, -0.5]}, "positive"),
    ({"sweeps": 0}, "sweeps"),
    ({"burn_in": 11}, "burn_in"),
    ({"moves": 0}, "moves"),
    ({"first_sweep": -1}, "first_sweep"),
])
def test_bad_arguments(kwargs, message):
    args = {"betas": BETAS, "sweeps": 10, "burn_in": 2, **kwargs}
    with pytest.raises(ValueError, match=message):
        replica_exchange_mala(StateSpace.euclidean(1), energy, torch.ones(4, 1, dtype=torch.float64), args.pop("betas"), **args)
    with pytest.raises(ValueError, match="x must be"):
        replica_exchange_mala(StateSpace.euclidean(1), energy, torch.ones(3, 4, 1, dtype=torch.float64), BETAS, sweeps=3, burn_in=0)
