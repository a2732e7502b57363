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

__all__ = ["SDEResult", "sample_sde"]


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
    mask = space.torus_mask(x)
    scale2 = space.torus_scale(x) ** 2
    st2 = diffusion.schedule.sigma_tilde(chain["t"]) ** 2
    gen_device = generator.device if generator is not None else x.device
    for i in range(steps, 0, -1):
        t = torch.full((num,), float(chain["t"][i]), dtype=x.dtype, device=x.device)
        score = score_fn(x, t)
        beta = float(chain["beta"][i])
        euclid_mean = (x + beta * score) / (1.0 - beta) ** 0.5
        var_e = torch.full_like(x, beta)
        if space.has_torus:
            dv = scale2 * float(st2[i] - st2[i - 1])
            torus_mean = x + dv * score
            mean = torch.where(mask, torus_mean, euclid_mean)
            var = torch.where(mask, dv.expand_as(x), var_e)
        else:
            mean, var = euclid_mean, var_e
        if i > 1:
            z = torch.randn(x.shape, generator=generator, device=gen_device, dtype=x.dtype).to(x.device)
            x = mean + var.sqrt() * z
        else:
            x = mean
        x = space.wrap(x)
    return SDEResult(x=x, nfe=steps)
