"""The forward process on a :class:`StateSpace` and its conditional scores.

Euclidean entries follow DiG's variance-preserving SDE (see :mod:`.schedule`):

    x_t = alpha(t) x_0 + sigma(t) eps,            eps ~ N(0, 1).

Periodic entries follow a variance-exploding SDE on the circle whose noise level is tied
to the same clock through the noise-to-signal ratio sigma_tilde(t) = sigma(t)/alpha(t):

    x_t = wrap(x_0 + c sigma_tilde(t) eps),        dx = c sqrt(d sigma_tilde^2/dt) dB,

so x_t | x_0 is a wrapped normal with std c sigma_tilde(t). At t = 1, sigma_tilde ~ 150 and
the periodic marginal is uniform to within 1e-50, which is the prior.

With ``y = x / alpha`` on Euclidean entries (y = x on periodic ones) both kinds of entry
obey the same variance-exploding probability-flow ODE in the variable sigma_tilde,

    dy/d sigma_tilde = -sigma_tilde * kappa(t) * score_x(x, t),
    kappa = alpha(t) (Euclidean),  c^2 (periodic),

which is what :mod:`.ode` integrates (the EDM/DDIM form; Karras et al. 2022).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from .schedule import NoiseSchedule
from .space import StateSpace
from .torus import wrapped_normal_score

__all__ = ["Diffusion", "ScoreFn"]

ScoreFn = Callable[[Tensor, Tensor], Tensor]
"""A score function ``(x (B, *shape), t (B,)) -> grad_x log p_t(x) (B, *shape)``."""


@dataclass(frozen=True, eq=False)
class Diffusion:
    """Forward noising process of a state space under a noise schedule.

    Parameters
    ----------
    space
        Shape and topology of the state.
    schedule
        VP noise schedule; defaults to DiG's linear schedule.
    """

    space: StateSpace
    schedule: NoiseSchedule = NoiseSchedule()

    # ------------------------------------------------------------------ per-entry coefficients
    def _expand(self, v: Tensor, like: Tensor) -> Tensor:
        return v.reshape(-1, *([1] * len(self.space.shape))).to(like)

    def signal_coef(self, t: Tensor, like: Tensor) -> Tensor:
        """Per-entry signal coefficient: alpha(t) on Euclidean, 1 on periodic entries, ``like``'s shape."""
        a = self._expand(self.schedule.alpha(t), like).expand_as(like)
        return torch.where(self.space.torus_mask(like), torch.ones_like(a), a)

    def noise_std(self, t: Tensor, like: Tensor) -> Tensor:
        """Per-entry std of x_t | x_0: sigma(t) Euclidean, c sigma_tilde(t) periodic, ``like``'s shape."""
        sig = self._expand(self.schedule.sigma(t), like).expand_as(like)
        if not self.space.has_torus:
            return sig
        st = self._expand(self.schedule.sigma_tilde(t), like) * self.space.torus_scale(like)
        return torch.where(self.space.torus_mask(like), st, sig)

    def ode_kappa(self, t: Tensor, like: Tensor) -> Tensor:
        """kappa(t) of the sigma_tilde-ODE: alpha(t) Euclidean, c^2 periodic, ``like``'s shape."""
        a = self._expand(self.schedule.alpha(t), like).expand_as(like)
        if not self.space.has_torus:
            return a
        return torch.where(self.space.torus_mask(like), self.space.torus_scale(like) ** 2, a)

    def uniform_gate(self, t: Tensor, like: Tensor, start: float = 0.45, end: float = 0.75) -> Tensor:
        """Factor in [0, 1] that switches off a noise prediction where its marginal is uniform.

        On a periodic entry with period P, every Fourier mode k of p_t is damped by
        exp(-2 pi^2 k^2 r^2), r = c sigma_tilde(t) / P: at r = 0.45 the first mode keeps 2 % of
        its amplitude, at r = 0.6 below 0.1 %, so the exact score and noise prediction vanish
        there (|eps| < 0.01). A learned network is never exactly zero, and the
        probability-flow ODE integrates its residual over sigma_tilde up to ~150, which
        distorts the uniform prior. Multiplying periodic predictions by this gate (1 for
        r <= ``start``, a cos^2 taper to 0 at r = ``end``) removes that error and nothing
        else. Euclidean entries get 1.

        Returns
        -------
        Tensor of ``like``'s shape, dtype and device.
        """
        if not 0 < start < end:
            raise ValueError(f"need 0 < start < end, got {start}, {end}")
        if not self.space.has_torus:
            return torch.ones_like(like)
        period = self.space.periods(like)
        safe = torch.where(period > 0, period, torch.ones_like(period))
        r = self.noise_std(t, like) / safe
        phase = ((r - start) / (end - start)).clamp(0.0, 1.0)
        gate = torch.cos(0.5 * torch.pi * phase) ** 2
        return torch.where(self.space.torus_mask(like), gate, torch.ones_like(gate))

    # ------------------------------------------------------------------ forward process
    def sample_time(self, num: int, *, power: float = 1.0, generator: torch.Generator | None = None, device=None, dtype=torch.float32) -> Tensor:
        """Stratified times in [t_min, 1], shape ``(num,)`` (lower-variance than i.i.d.).

        ``t = t_min + (1 - t_min) u^power`` with stratified uniform ``u``: ``power = 1`` is
        uniform; ``power > 1`` puts more samples at low noise (density ∝ t^(1/power - 1)),
        where structures are refined, and fewer where the state is already close to the prior.
        """
        if not power > 0:
            raise ValueError(f"power must be > 0, got {power}")
        gen_device = generator.device if generator is not None else (device or "cpu")
        u = (torch.arange(num, dtype=dtype, device=gen_device) + torch.rand(num, generator=generator, device=gen_device, dtype=dtype)) / num
        u = u[torch.randperm(num, generator=generator, device=gen_device)]
        t_min = self.schedule.t_min
        return (t_min + (1 - t_min) * u**power).to(device or "cpu")

    def perturb(self, x0: Tensor, t: Tensor, *, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        """Draw x_t ~ p(x_t | x_0).

        Returns
        -------
        x_t (B, *shape), wrapped on periodic entries, and the standard normal ``eps`` used.
        """
        gen_device = generator.device if generator is not None else x0.device
        eps = torch.randn(x0.shape, generator=generator, device=gen_device, dtype=x0.dtype).to(x0.device)
        xt = self.signal_coef(t, x0) * x0 + self.noise_std(t, x0) * eps
        return self.space.wrap(xt), eps

    def conditional_score(self, xt: Tensor, x0: Tensor, t: Tensor) -> Tensor:
        """grad_{x_t} log p(x_t | x_0): Gaussian on Euclidean, wrapped normal (exact series) on periodic entries."""
        std = self.noise_std(t, xt)
        euclid = -(xt - self.signal_coef(t, xt) * x0) / std**2
        if not self.space.has_torus:
            return euclid
        mask = self.space.torus_mask(xt)
        period = self.space.periods(xt)
        safe_period = torch.where(mask, period, torch.ones_like(period))
        torus = wrapped_normal_score(xt, x0, std, safe_period)
        return torch.where(mask, torus, euclid)

    # ------------------------------------------------------------------ parameterizations
    def eps_to_score(self, eps: Tensor, t: Tensor) -> Tensor:
        """Convert a noise prediction to a score: s = -eps / std(t)."""
        return -eps / self.noise_std(t, eps)

    def score_to_eps(self, score: Tensor, t: Tensor) -> Tensor:
        """Convert a score to the equivalent noise prediction: eps = -std(t) s."""
        return -self.noise_std(t, score) * score

    def denoise(self, x: Tensor, t: Tensor, score: Tensor) -> Tensor:
        """Tweedie's estimate of E[x_0 | x_t] from the score (first order on periodic entries)."""
        std = self.noise_std(t, x)
        return self.space.wrap((x + std**2 * score) / self.signal_coef(t, x))
