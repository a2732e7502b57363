"""Noise schedules of the variance-preserving (Ornstein–Uhlenbeck) forward process.

The forward SDE on Euclidean state dimensions is

    dR = -1/2 beta(t) R dt + sqrt(beta(t)) dB,        t in [0, 1],

so that R_t | R_0 ~ N(alpha(t) R_0, sigma(t)^2 I) with

    alpha(t) = exp(-1/2 int_0^t beta(s) ds),   sigma(t) = sqrt(1 - alpha(t)^2).

DiG (Zheng et al. 2024) writes the same process with N discrete steps,
alpha_i = prod_{j<=i} sqrt(1 - beta_j) and sigma_i = sqrt(1 - alpha_i^2);
:meth:`NoiseSchedule.discretize` returns discrete betas whose products reproduce the
continuous alpha(t_i) exactly, so the two descriptions agree on any grid.

Throughout digmat the *noise-to-signal ratio* ``sigma_tilde(t) = sigma(t) / alpha(t)``
is the natural integration variable of the probability-flow ODE (see
:mod:`digmat.core.ode`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["NoiseSchedule", "SCHEDULE_KINDS"]

SCHEDULE_KINDS = ("linear", "cosine", "sigmoid")

# The cosine schedule reaches alpha = 0 at t = 1; like DPM-Solver we stop its clock
# slightly earlier so that log alpha stays finite (alpha(1) ~ 4e-3).
_COSINE_T_END = 0.9946


@dataclass(frozen=True)
class NoiseSchedule:
    """A continuous-time VP noise schedule.

    Parameters
    ----------
    kind
        ``"linear"``: beta(t) = beta_min + t (beta_max - beta_min) (Song et al. 2021;
        equals DDPM's 1e-4..2e-2 over 1000 steps for the defaults).
        ``"cosine"``: alpha(t)^2 = f(t)/f(0), f(t) = cos^2(pi/2 (t' + s)/(1 + s)),
        t' = 0.9946 t (Nichol & Dhariwal 2021).
        ``"sigmoid"``: beta(t) = beta_min + (beta_max - beta_min) sigmoid(12 t - 6), the
        GeoDiff/DiG reference-code shape ``sigmoid(linspace(-6, 6, N))``.
    beta_min, beta_max
        Rates at t = 0 and t = 1 (dimensionless per unit time) for linear and sigmoid.
    cosine_s
        Offset ``s`` of the cosine schedule.
    t_min
        Smallest time used by samplers, likelihoods and training (the score is never
        queried below it).
    """

    kind: str = "linear"
    beta_min: float = 0.1
    beta_max: float = 20.0
    cosine_s: float = 0.008
    t_min: float = 1e-3

    def __post_init__(self) -> None:
        if self.kind not in SCHEDULE_KINDS:
            raise ValueError(f"unknown schedule kind {self.kind!r}; choose one of {SCHEDULE_KINDS}")
        if not 0 < self.beta_min < self.beta_max:
            raise ValueError(f"need 0 < beta_min < beta_max, got {self.beta_min}, {self.beta_max}")
        if not 0 < self.t_min < 0.5:
            raise ValueError(f"t_min must lie in (0, 0.5), got {self.t_min}")

    # ------------------------------------------------------------------ continuous
    def log_alpha(self, t: Tensor) -> Tensor:
        """log alpha(t) = -1/2 int_0^t beta(s) ds, shape of ``t``."""
        t = torch.as_tensor(t)
        if self.kind == "linear":
            return -0.5 * (self.beta_min * t + 0.5 * (self.beta_max - self.beta_min) * t**2)
        if self.kind == "sigmoid":
            dbeta = self.beta_max - self.beta_min
            integral = self.beta_min * t + dbeta / 12.0 * (
                torch.nn.functional.softplus(12.0 * t - 6.0) - math.log1p(math.exp(-6.0))
            )
            return -0.5 * integral
        s = self.cosine_s
        arg = (_COSINE_T_END * t + s) / (1.0 + s) * (math.pi / 2)
        log_a = torch.log(torch.cos(arg)) - math.log(math.cos(s / (1.0 + s) * math.pi / 2))
        return torch.clamp(log_a, max=0.0)  # round-off at t = 0 must not give alpha > 1

    def beta(self, t: Tensor) -> Tensor:
        """beta(t) = -2 d log alpha / dt, shape of ``t``."""
        t = torch.as_tensor(t)
        if self.kind == "linear":
            return self.beta_min + (self.beta_max - self.beta_min) * t
        if self.kind == "sigmoid":
            return self.beta_min + (self.beta_max - self.beta_min) * torch.sigmoid(12.0 * t - 6.0)
        s = self.cosine_s
        scale = _COSINE_T_END * math.pi / (2 * (1.0 + s))
        arg = (_COSINE_T_END * t + s) / (1.0 + s) * (math.pi / 2)
        return 2.0 * scale * torch.tan(arg)

    def alpha(self, t: Tensor) -> Tensor:
        """Signal coefficient alpha(t) in (0, 1]."""
        return torch.exp(self.log_alpha(t))

    def sigma(self, t: Tensor) -> Tensor:
        """Noise standard deviation sigma(t) = sqrt(1 - alpha^2) of the VP marginal."""
        return torch.sqrt(-torch.expm1(2.0 * self.log_alpha(t)))

    def sigma_tilde(self, t: Tensor) -> Tensor:
        """Noise-to-signal ratio sigma(t)/alpha(t) = sqrt(exp(-2 log alpha) - 1)."""
        return torch.sqrt(torch.expm1(-2.0 * self.log_alpha(t)))

    def t_of_sigma_tilde(self, sigma_tilde: Tensor, iterations: int = 64) -> Tensor:
        """Invert :meth:`sigma_tilde` (monotone in t) by bisection on [0, 1].

        Works for every schedule kind; 64 halvings reach float64 resolution.
        """
        st = torch.as_tensor(sigma_tilde)
        target = torch.log1p(st.to(torch.float64) ** 2)  # = -2 log alpha
        lo = torch.zeros_like(target)
        hi = torch.ones_like(target)
        for _ in range(iterations):
            mid = 0.5 * (lo + hi)
            above = -2.0 * self.log_alpha(mid) > target
            hi = torch.where(above, mid, hi)
            lo = torch.where(above, lo, mid)
        return (0.5 * (lo + hi)).to(st.dtype if st.is_floating_point() else torch.float64)

    def ode_range(self) -> tuple[float, float]:
        """(s_max, s_min): sigma_tilde at t = 1 and at t_min, the ends of the probability-flow ODE."""
        one = torch.tensor(1.0, dtype=torch.float64)
        return float(self.sigma_tilde(one)), float(self.sigma_tilde(torch.tensor(self.t_min, dtype=torch.float64)))

    def log_alpha_drop(self) -> float:
        """log alpha(1) - log alpha(t_min): per Euclidean entry, the log-Jacobian of y = x / alpha
        between the ODE's ends (the term n_E [log alpha(1) - log alpha(t_min)] of log-densities)."""
        return float(self.log_alpha(torch.tensor(1.0, dtype=torch.float64))
                     - self.log_alpha(torch.tensor(self.t_min, dtype=torch.float64)))

    # ------------------------------------------------------------------ discrete
    def discretize(self, num_steps: int, *, power: float = 1.0, dtype: torch.dtype = torch.float64) -> dict[str, Tensor]:
        """DiG's discrete chain on the grid t_0 = 0 < t_1 = t_min < ... < t_N = 1.

        ``t_i = t_min + (1 - t_min) u_i^power`` with u uniform on [0, 1]: ``power = 1`` is DiG's
        uniform grid; ``power > 1`` spends more of the steps at low noise, where a crystal's
        bonds are resolved (with the linear schedule and 200 steps, ``power = 1`` takes 12 steps
        below sigma_tilde = 0.2, ``power = 3`` takes 76).

        Returns
        -------
        dict with ``t`` (N+1,), ``alpha`` (N+1,) = prod_{j<=i} sqrt(1 - beta_j),
        ``sigma`` (N+1,) = sqrt(1 - alpha^2), ``beta`` (N+1,) with ``beta[0] = 0`` and
        beta_i = 1 - (alpha(t_i)/alpha(t_{i-1}))^2 so products match the continuous alpha.
        """
        if num_steps < 1:
            raise ValueError(f"num_steps must be >= 1, got {num_steps}")
        if not power > 0:
            raise ValueError(f"power must be > 0, got {power}")
        grid = self.t_min + (1.0 - self.t_min) * torch.linspace(0.0, 1.0, num_steps, dtype=dtype) ** power
        t = torch.cat([torch.zeros(1, dtype=dtype), grid])
        log_a = self.log_alpha(t)
        beta = torch.zeros_like(t)
        beta[1:] = -torch.expm1(2.0 * (log_a[1:] - log_a[:-1]))
        return {"t": t, "alpha": torch.exp(log_a), "sigma": self.sigma(t), "beta": beta}
