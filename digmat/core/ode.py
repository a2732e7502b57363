"""Batched ODE integrators used by the probability-flow sampler, the density and interpolation.

The integrators are generic: they advance a batch ``y (B, M)`` along a scalar variable ``s``
shared by the batch, calling ``field(s, y) -> dy/ds`` (one network evaluation per call).

* :func:`heun` — second-order Heun (trapezoidal predictor–corrector) on a given grid;
  a step whose end point is s = 0 is taken with Euler (EDM's rule, since the field is then
  only needed at s > 0). Cost: 2 evaluations per step, 1 for the final Euler step.
* :func:`dopri5` — adaptive Dormand–Prince 5(4) with first-same-as-last and a PI step
  controller; the error norm is the RMS over entries of err / (atol + rtol max(|y|, |y_new|)),
  maximised over the batch so all members share one step sequence.
* :func:`karras_grid` — the EDM noise-level grid (rho = 7), dense at low noise.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["Field", "ODEStats", "heun", "euler", "dopri5", "karras_grid"]

Field = Callable[[Tensor, Tensor], Tensor]


@dataclass
class ODEStats:
    """What an integration cost: field evaluations and accepted / rejected steps."""

    nfe: int = 0
    steps: int = 0
    rejected: int = 0


def karras_grid(s_max: float, s_min: float, num: int, *, rho: float = 7.0, dtype=torch.float64) -> Tensor:
    """``num`` noise levels from s_max down to s_min, uniform in s^(1/rho), shape ``(num,)``."""
    if num < 2:
        raise ValueError(f"a grid needs at least 2 points, got {num}")
    i = torch.linspace(0, 1, num, dtype=dtype)
    a, b = s_max ** (1 / rho), s_min ** (1 / rho)
    return (a + i * (b - a)) ** rho


def euler(field: Field, y: Tensor, grid: Tensor, stats: ODEStats | None = None) -> Tensor:
    """First-order Euler along ``grid`` (for reference and tests)."""
    stats = stats if stats is not None else ODEStats()
    for s0, s1 in zip(grid[:-1], grid[1:]):
        y = y + (s1 - s0) * field(s0, y)
        stats.nfe += 1
        stats.steps += 1
    return y


def heun(field: Field, y: Tensor, grid: Tensor, stats: ODEStats | None = None) -> Tensor:
    """Heun's second-order method along ``grid`` (any direction).

    Parameters
    ----------
    field
        ``field(s, y) -> dy/ds``, with ``s`` a 0-d tensor and ``y`` of shape (B, M).
    y
        Initial state at ``grid[0]``, shape (B, M).
    grid
        Points s_0, s_1, ..., s_N, shape (N + 1,), monotone.
    """
    stats = stats if stats is not None else ODEStats()
    f0 = None
    for s0, s1 in zip(grid[:-1], grid[1:]):
        h = s1 - s0
        if f0 is None:
            f0 = field(s0, y)
            stats.nfe += 1
        y_pred = y + h * f0
        if float(s1) == 0.0:
            y, f0 = y_pred, None
        else:
            f1 = field(s1, y_pred)
            stats.nfe += 1
            y = y + 0.5 * h * (f0 + f1)
            f0 = None
        stats.steps += 1
    return y


# Dormand–Prince 5(4) tableau.
_C = (0.0, 1 / 5, 3 / 10, 4 / 5, 8 / 9, 1.0, 1.0)
_A = (
    (),
    (1 / 5,),
    (3 / 40, 9 / 40),
    (44 / 45, -56 / 15, 32 / 9),
    (19372 / 6561, -25360 / 2187, 64448 / 6561, -212 / 729),
    (9017 / 3168, -355 / 33, 46732 / 5247, 49 / 176, -5103 / 18656),
    (35 / 384, 0.0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84),
)
_B5 = (35 / 384, 0.0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84, 0.0)
_B4 = (5179 / 57600, 0.0, 7571 / 16695, 393 / 640, -92097 / 339200, 187 / 2100, 1 / 40)


def dopri5(
    field: Field,
    y: Tensor,
    s0: float,
    s1: float,
    *,
    rtol: float = 1e-4,
    atol: float = 1e-4,
    first_step: float | None = None,
    max_steps: int = 10_000,
    error_mask: Tensor | None = None,
    stats: ODEStats | None = None,
) -> Tensor:
    """Adaptive Dormand–Prince 5(4) from s0 to s1 (either direction).

    Parameters
    ----------
    error_mask
        Optional (M,) boolean: only these columns enter the error norm (e.g. exclude
        log-density accumulators, which never feed back into the dynamics).
    """
    stats = stats if stats is not None else ODEStats()
    direction = 1.0 if s1 > s0 else -1.0
    span = abs(s1 - s0)
    h = first_step if first_step is not None else span / 20
    s = s0
    k1 = field(torch.tensor(s, dtype=torch.float64), y)
    stats.nfe += 1
    factor_min, factor_max, safety = 0.2, 5.0, 0.9
    prev_err = 1.0
    while direction * (s1 - s) > 1e-12 * max(1.0, span):
        if stats.steps + stats.rejected >= max_steps:
            raise RuntimeError(f"dopri5 did not reach s={s1} in {max_steps} steps (stuck at s={s})")
        h = min(h, abs(s1 - s))
        dt = direction * h
        ks = [k1]
        for i in range(1, 7):
            yi = y + dt * sum(a * k for a, k in zip(_A[i], ks))
            ks.append(field(torch.tensor(s + _C[i] * dt, dtype=torch.float64), yi))
            stats.nfe += 1
        y5 = y + dt * sum(b * k for b, k in zip(_B5, ks) if b != 0.0)
        y4 = y + dt * sum(b * k for b, k in zip(_B4, ks) if b != 0.0)
        scale = atol + rtol * torch.maximum(y.abs(), y5.abs())
        ratio = ((y5 - y4) / scale) ** 2
        if error_mask is not None:
            ratio = ratio[:, error_mask]
        err = float(ratio.mean(dim=1).sqrt().max())
        if err <= 1.0:
            s = s + dt
            y = y5
            k1 = ks[-1]  # first same as last
            stats.steps += 1
            factor = safety * err ** (-0.7 / 5) * prev_err ** (0.4 / 5) if err > 0 else factor_max
            prev_err = max(err, 1e-4)
            h = h * min(factor_max, max(factor_min, factor))
        else:
            stats.rejected += 1
            h = h * max(factor_min, safety * err ** (-1 / 5))
    return y
