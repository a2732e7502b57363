"""Reverse-SDE sampling with DiG's ancestral update.

On Euclidean entries DiG (Zheng et al. 2024, eq. 3) steps from i to i-1 as

    R_{i-1} = (R_i + beta_i s(R_i, t_i)) / sqrt(1 - beta_i) + sqrt(beta_i) z_i,

with the discrete betas of :meth:`NoiseSchedule.discretize`. Periodic entries use the
variance-exploding ancestral step with v_i = (c sigma_tilde_i)^2 (Song et al. 2021):

    x_{i-1} = wrap(x_i + (v_i - v_{i-1}) s(x_i, t_i) + sqrt(v_i - v_{i-1}) z_i).

The final step (to t = 0) adds no noise. One score evaluation per step.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from .diffusion import Diffusion, ScoreFn

__all__ = ["SDEResult", "ancestral_step", "resample_sde", "sample_sde"]


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
) -> SDEResult:
    """Draw ``num`` samples by running DiG's ancestral reverse chain for ``steps`` steps.

    ``x_init`` (num, *shape) replaces the prior draw at t = 1 if given. ``grid_power`` > 1
    places more of the steps at low noise (see :meth:`NoiseSchedule.discretize`).
    """
    space = diffusion.space
    x = space.sample_prior(num, generator=generator, device=device, dtype=dtype) if x_init is None else space.check(x_init, "x_init")
    chain = diffusion.schedule.discretize(steps, power=grid_power)
    return SDEResult(x=_reverse_chain(diffusion, score_fn, x, chain, steps, generator), nfe=steps)


def _reverse_chain(diffusion: Diffusion, score_fn: ScoreFn, x: Tensor, chain: dict[str, Tensor], start: int,
                   generator: torch.Generator | None) -> Tensor:
    """Ancestral steps from grid point ``start`` down to t_0 = 0; one score evaluation each."""
    for i in range(start, 0, -1):
        t = torch.full((x.shape[0],), float(chain["t"][i]), dtype=x.dtype, device=x.device)
        x = ancestral_step(diffusion, x, score_fn(x, t), chain, i, generator=generator)
    return x


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
        gen_device = generator.device if generator is not None else x.device
        z = torch.randn(x.shape, generator=generator, device=gen_device, dtype=x.dtype).to(x.device)
        mean = mean + var.sqrt() * z
    return space.wrap(mean)
