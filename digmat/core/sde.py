"""Reverse-SDE sampling with DiG's ancestral update.

On Euclidean entries DiG (Zheng et al. 2024, eq. 3) steps from i to i-1 as

    R_{i-1} = (R_i + beta_i s(R_i, t_i)) / sqrt(1 - beta_i) + sqrt(beta_i) z_i,

with the discrete betas of :meth:`NoiseSchedule.discretize`. Periodic entries use the
variance-exploding ancestral step with v_i = (c sigma_tilde_i)^2 (Song et al. 2021):

    x_{i-1} = wrap(x_i + (v_i - v_{i-1}) s(x_i, t_i) + sqrt(v_i - v_{i-1}) z_i).

The final step (to t = 0) adds no noise. One score evaluation per step.

A :class:`LangevinCorrector` (Song et al. 2021's predictor–corrector sampler) adds, after each
ancestral step that lands at a time t_{i-1} <= ``t_max``, ``steps`` Langevin moves that leave the
current marginal p_{t_{i-1}} invariant. Each entry d takes the preconditioned step

    x_d <- wrap(x_d + e_d s_d(x, t) + sqrt(2 e_d) z_d),     e_d = 2 (snr * std_d(t))^2,

with std_d the entry's noise std at t (sigma on Euclidean, c sigma_tilde on periodic entries),
which for a Gaussian marginal is Song's rule e = 2 (snr |z| / |s|)^2 entry by entry. It spends
extra score evaluations to pull the chain back onto p_t where the predictor's steps (or an
imperfect score) left it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from .diffusion import Diffusion, ScoreFn

__all__ = ["LangevinCorrector", "SDEResult", "ancestral_step", "langevin_step", "resample_sde", "sample_sde"]


@dataclass(frozen=True)
class LangevinCorrector:
    """Langevin corrector moves between the ancestral steps (see the module docstring).

    Attributes
    ----------
    steps : int
        Langevin moves after each ancestral step, >= 0 (0: no corrector).
    snr : float
        Signal-to-noise ratio r of Song et al. (2021), > 0: each move's step is
        e_d = 2 (r std_d(t))^2, a displacement of ~ 2 r std_d(t) per move.
    t_max : float
        Correct only at times t <= t_max, in (0, 1] (1: at every step; small values spend the
        evaluations at low noise, where a crystal's bonds are set).
    """

    steps: int = 1
    snr: float = 0.1
    t_max: float = 1.0

    def __post_init__(self) -> None:
        if isinstance(self.steps, bool) or not isinstance(self.steps, int) or self.steps < 0:
            raise ValueError(f"corrector steps must be an integer >= 0, got {self.steps!r}")
        if not self.snr > 0:
            raise ValueError(f"corrector snr must be > 0, got {self.snr!r}")
        if not 0.0 < self.t_max <= 1.0:
            raise ValueError(f"corrector t_max must lie in (0, 1], got {self.t_max!r}")

    def evaluations(self, chain_t: Tensor, start: int) -> int:
        """Score evaluations it adds to a reverse chain from grid point ``start`` on ``chain_t``."""
        if self.steps == 0:
            return 0
        landed = chain_t[1:start]  # t_{i-1} for i = start..2 (the last step lands at t_0 = 0: no move)
        return self.steps * int((landed <= self.t_max).sum())


@dataclass
class SDEResult:
    """Samples ``x`` (B, *shape) and the number of score evaluations per sample."""

    x: Tensor
    nfe: int


@torch.no_grad()
def sample_sde(
    diffusion: Diffusion,
    score_fn: ScoreFn,
    num: int,
    *,
    steps: int = 1000,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
    x_init: Tensor | None = None,
    grid_power: float = 1.0,
    corrector: LangevinCorrector | None = None,
) -> SDEResult:
    """Draw ``num`` samples by running DiG's ancestral reverse chain for ``steps`` steps.

    ``x_init`` (num, *shape) replaces the prior draw at t = 1 if given. ``grid_power`` > 1
    places more of the steps at low noise (see :meth:`NoiseSchedule.discretize`). A
    ``corrector`` adds Langevin moves after the steps (``nfe`` counts them).
    """
    space = diffusion.space
    x = space.sample_prior(num, generator=generator, device=device, dtype=dtype) if x_init is None else space.check(x_init, "x_init")
    chain = diffusion.schedule.discretize(steps, power=grid_power)
    extra = corrector.evaluations(chain["t"], steps) if corrector is not None else 0
    return SDEResult(x=_reverse_chain(diffusion, score_fn, x, chain, steps, generator, corrector), nfe=steps + extra)


def _reverse_chain(diffusion: Diffusion, score_fn: ScoreFn, x: Tensor, chain: dict[str, Tensor], start: int,
                   generator: torch.Generator | None, corrector: LangevinCorrector | None = None) -> Tensor:
    """Ancestral steps from grid point ``start`` down to t_0 = 0, each followed by the
    corrector's Langevin moves where it applies; one score evaluation per step or move."""
    moves = corrector.steps if corrector is not None else 0
    for i in range(start, 0, -1):
        t = torch.full((x.shape[0],), float(chain["t"][i]), dtype=x.dtype, device=x.device)
        x = ancestral_step(diffusion, x, score_fn(x, t), chain, i, generator=generator)
        t_next = float(chain["t"][i - 1])
        if moves and i > 1 and t_next <= corrector.t_max:
            t = torch.full_like(t, t_next)
            for _ in range(moves):
                x = langevin_step(diffusion, x, score_fn(x, t), t, corrector.snr, generator=generator)
    return x


def langevin_step(diffusion: Diffusion, x: Tensor, score: Tensor, t: Tensor, snr: float, *,
                  generator: torch.Generator | None = None) -> Tensor:
    """One preconditioned Langevin move at time ``t`` (B,) that leaves p_t invariant as the step
    shrinks: ``x + e s + sqrt(2 e) z`` with e = 2 (snr std(t))^2 per entry; wrapped.

    ``x`` and ``score`` (B, *shape) at ``t``. See :class:`LangevinCorrector`.
    """
    step = 2.0 * (snr * diffusion.noise_std(t, x)) ** 2
    return diffusion.space.wrap(x + step * score + (2.0 * step).sqrt() * _standard_normal(x, generator))


@torch.no_grad()
def resample_sde(
    diffusion: Diffusion,
    score_fn: ScoreFn,
    x0: Tensor,
    t_start: float,
    *,
    steps: int = 1000,
    generator: torch.Generator | None = None,
    grid_power: float = 1.0,
) -> SDEResult:
    """Noise given states to ``t_start`` and run the reverse chain back to t = 0 (SDEdit).

    ``x0`` (B, *shape) are drawn to ``x_t ~ p(x_t | x_0)`` at the last point of the
    ``steps``-step grid (the same grid as :func:`sample_sde`) not above ``t_start``, then
    denoised with the remaining steps. With the exact score and ``x0`` drawn from the data
    distribution the result is again distributed as the data: how far a model's restarted
    samples drift from their starts, per ``t_start``, shows at which noise level it loses
    what the data have (a crystal's bond lengths, a site's population). ``nfe`` counts the
    steps run.
    """
    if not 0.0 < t_start <= 1.0:
        raise ValueError(f"t_start must lie in (0, 1], got {t_start}")
    x0 = diffusion.space.check(x0, "x0")
    chain = diffusion.schedule.discretize(steps, power=grid_power)
    start = int((chain["t"] <= t_start).nonzero().max())
    if start == 0:
        return SDEResult(x=x0.clone(), nfe=0)
    x, _ = diffusion.perturb(x0, torch.full((x0.shape[0],), float(chain["t"][start]), dtype=x0.dtype, device=x0.device), generator=generator)
    return SDEResult(x=_reverse_chain(diffusion, score_fn, x, chain, start, generator), nfe=start)


def ancestral_step(diffusion: Diffusion, x: Tensor, score: Tensor, chain: dict[str, Tensor], i: int, *,
                   generator: torch.Generator | None = None) -> Tensor:
    """One step of the ancestral chain from ``chain["t"][i]`` to ``chain["t"][i - 1]``.

    ``x`` and ``score`` (B, *shape) at t_i; ``chain`` from :meth:`NoiseSchedule.discretize`. The
    step to t_0 (i = 1) adds no noise. Returns the new state, wrapped on periodic entries.
    """
    space = diffusion.space
    beta = float(chain["beta"][i])
    mean = (x + beta * score) / (1.0 - beta) ** 0.5
    var = torch.full_like(x, beta)
    if space.has_torus:
        st2 = diffusion.schedule.sigma_tilde(chain["t"][i - 1 : i + 1]) ** 2
        dv = space.torus_scale(x) ** 2 * float(st2[1] - st2[0])
        mask = space.torus_mask(x)
        mean = torch.where(mask, x + dv * score, mean)
        var = torch.where(mask, dv.expand_as(x), var)
    if i > 1:
        mean = mean + var.sqrt() * _standard_normal(x, generator)
    return space.wrap(mean)


def _standard_normal(like: Tensor, generator: torch.Generator | None) -> Tensor:
    """N(0, 1) noise of ``like``'s shape, dtype and device, drawn on the generator's device."""
    gen_device = generator.device if generator is not None else like.device
    return torch.randn(like.shape, generator=generator, device=gen_device, dtype=like.dtype).to(like.device)
