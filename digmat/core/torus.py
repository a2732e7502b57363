"""Wrapped normal distribution on a circle of period L: exact log-density and score.

For a displacement d (wrapped into [-L/2, L/2)) and standard deviation s > 0,

    p(d) = sum_k N(d + kL; 0, s^2)                                   (direct series)
         = 1/L [1 + 2 sum_{n>=1} q^{n^2} cos(2 pi n d / L)],  q = exp(-2 pi^2 s^2 / L^2)
                                                                    (Fourier / theta series)

Both are evaluated with a fixed number of terms and switched at s = L/2:

* direct series for s <= L/2 with |k| <= K = 4: the neglected terms relative to the
  k = 0 term are bounded by 2 exp(-K(K+1) L^2 / (2 s^2)) / (1 - exp(-(K+1) L^2 / s^2))
  <= 2 exp(-40) ~ 8e-18;
* Fourier series for s > L/2 with n <= M = 4: the neglected terms are bounded by
  2 q^{(M+1)^2} / (1 - q) <= 2 exp(-25 pi^2 / 2) ~ 1e-54, relative to a bracket >= 0.98.

So both log p and its gradient (the score) are exact to float64 round-off for every s.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = [
    "wrap",
    "wrap_centered",
    "wrapped_normal_log_prob",
    "wrapped_normal_score",
    "wrapped_normal_log_prob_and_score",
    "truncation_error_bound",
    "DIRECT_TERMS",
    "FOURIER_TERMS",
]

DIRECT_TERMS = 4
FOURIER_TERMS = 4


def wrap(x: Tensor, period: Tensor | float) -> Tensor:
    """Map ``x`` into [0, period) (elementwise, broadcasting)."""
    return x - period * torch.floor(x / period)


def wrap_centered(x: Tensor, period: Tensor | float) -> Tensor:
    """Map ``x`` into [-period/2, period/2): the shortest signed displacement on the circle."""
    return x - period * torch.round(x / period)


def truncation_error_bound(std: float, period: float) -> float:
    """Upper bound on the relative truncation error of :func:`wrapped_normal_log_prob`'s series."""
    ratio = std / period
    if ratio <= 0.5:
        k = DIRECT_TERMS
        a = period**2 / (2 * std**2)
        return 2 * math.exp(-k * (k + 1) * a) / (1 - math.exp(-2 * (k + 1) * a))
    q = math.exp(-2 * math.pi**2 * ratio**2)
    return 2 * q ** ((FOURIER_TERMS + 1) ** 2) / (1 - q)


def _direct_terms(d: Tensor, std: Tensor, period: Tensor) -> tuple[Tensor, Tensor]:
    k = torch.arange(-DIRECT_TERMS, DIRECT_TERMS + 1, dtype=d.dtype, device=d.device)
    shifted = d.unsqueeze(-1) + k * period.unsqueeze(-1)  # (..., 2K+1)
    logits = -0.5 * (shifted / std.unsqueeze(-1)) ** 2
    return shifted, logits


def _fourier_terms(d: Tensor, std: Tensor, period: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    n = torch.arange(1, FOURIER_TERMS + 1, dtype=d.dtype, device=d.device)
    omega = 2 * math.pi * n / period.unsqueeze(-1)  # (..., M)
    coef = 2 * torch.exp(-0.5 * (omega * std.unsqueeze(-1)) ** 2)  # 2 q^{n^2}
    phase = omega * d.unsqueeze(-1)
    return coef, omega, phase


def wrapped_normal_log_prob_and_score(
    x: Tensor, mean: Tensor | float, std: Tensor | float, period: Tensor | float
) -> tuple[Tensor, Tensor]:
    """Elementwise log-density (per unit length) and score d/dx log p of a wrapped normal.

    Parameters
    ----------
    x, mean
        Points and centres on the circle, any real values (wrapped internally).
    std
        Standard deviation of the unwrapped normal, > 0.
    period
        Circumference L of the circle, > 0.

    Returns
    -------
    Two tensors of the broadcast shape of the inputs.
    """
    x, mean, std, period = _broadcast(x, mean, std, period)
    d = wrap_centered(x - mean, period)
    small = std <= 0.5 * period
    # one series where every entry is on the same side (the common case: one noise level per call)
    if bool(small.all()):
        return _direct_series(d, std, period)
    if not bool(small.any()):
        return _fourier_series(d, std, period)
    # mixed: both series, each with a safe std where the other one is selected
    direct_lp, direct_score = _direct_series(d, torch.where(small, std, period), period)
    fourier_lp, fourier_score = _fourier_series(d, torch.where(small, 0.5 * period, std), period)
    return torch.where(small, direct_lp, fourier_lp), torch.where(small, direct_score, fourier_score)


def _direct_series(d: Tensor, std: Tensor, period: Tensor) -> tuple[Tensor, Tensor]:
    shifted, logits = _direct_terms(d, std, period)
    log_prob = torch.logsumexp(logits, dim=-1) - 0.5 * torch.log(2 * math.pi * std**2)
    score = -(torch.softmax(logits, dim=-1) * shifted).sum(-1) / std**2
    return log_prob, score


def _fourier_series(d: Tensor, std: Tensor, period: Tensor) -> tuple[Tensor, Tensor]:
    coef, omega, phase = _fourier_terms(d, std, period)
    bracket = 1 + (coef * torch.cos(phase)).sum(-1)
    return torch.log(bracket) - torch.log(period), -(coef * omega * torch.sin(phase)).sum(-1) / bracket


def wrapped_normal_log_prob(x: Tensor, mean: Tensor | float, std: Tensor | float, period: Tensor | float) -> Tensor:
    """Elementwise log-density of a wrapped normal; see :func:`wrapped_normal_log_prob_and_score`."""
    return wrapped_normal_log_prob_and_score(x, mean, std, period)[0]


def wrapped_normal_score(x: Tensor, mean: Tensor | float, std: Tensor | float, period: Tensor | float) -> Tensor:
    """Elementwise d/dx log p(x) of a wrapped normal; see :func:`wrapped_normal_log_prob_and_score`."""
    return wrapped_normal_log_prob_and_score(x, mean, std, period)[1]


def _broadcast(x, mean, std, period) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    x = torch.as_tensor(x)
    dtype = x.dtype if x.is_floating_point() else torch.get_default_dtype()
    tensors = [torch.as_tensor(v, dtype=dtype, device=x.device) for v in (x, mean, std, period)]
    return tuple(torch.broadcast_tensors(*tensors))  # type: ignore[return-value]
