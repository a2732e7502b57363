"""Paths between two states through the latent space of the probability-flow ODE.

Both end states are encoded to their latents z_a, z_b (t = 1), the latents are joined by a
path, and every point of the path is decoded. Euclidean latent entries move linearly or
along the great circle of their joint norm ("spherical", which keeps intermediate latents
typical under N(0, I); it falls back to linear for (anti)parallel latents, e.g. a single
Euclidean entry); periodic entries move along the shortest arc of their circle.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from .diffusion import Diffusion, ScoreFn
from .flow import ODEConfig, decode, encode

__all__ = ["InterpolationResult", "interpolate_latents", "interpolate"]


@dataclass
class InterpolationResult:
    """``path`` (P, *shape) decoded states, ``latents`` (P, *shape), ``fractions`` (P,) in [0, 1]."""

    path: Tensor
    latents: Tensor
    fractions: Tensor


def interpolate_latents(diffusion: Diffusion, z_a: Tensor, z_b: Tensor, fractions: Tensor, *, mode: str = "linear") -> Tensor:
    """Latents along the path from ``z_a`` to ``z_b`` (each (*shape)) at ``fractions`` (P,)."""
    if mode not in ("linear", "spherical"):
        raise ValueError(f"mode must be 'linear' or 'spherical', got {mode!r}")
    space = diffusion.space
    f = fractions.to(z_a).reshape(-1, *([1] * z_a.ndim))
    delta = space.difference(z_b.unsqueeze(0), z_a.unsqueeze(0))[0]
    lin = z_a + f * delta  # periodic entries: shortest arc; Euclidean: straight line
    if mode == "linear":
        return space.wrap(lin)
    mask = space.torus_mask(z_a)
    ea, eb = z_a[~mask], z_b[~mask]
    cos = torch.clamp((ea @ eb) / (ea.norm() * eb.norm()), -1.0, 1.0)
    omega = torch.arccos(cos)
    if float(torch.sin(omega)) < 1e-3:  # (anti)parallel latents: the great circle is undefined
        return space.wrap(lin)
    fe = f.reshape(-1, 1)
    slerp = (torch.sin((1 - fe) * omega) * ea + torch.sin(fe * omega) * eb) / torch.sin(omega)
    out = lin.clone()
    out[:, ~mask] = slerp
    return space.wrap(out)


def interpolate(
    diffusion: Diffusion,
    score_fn: ScoreFn,
    x_a: Tensor,
    x_b: Tensor,
    num_points: int = 11,
    config: ODEConfig = ODEConfig(method="dopri5", rtol=1e-5, atol=1e-5),
    *,
    mode: str = "spherical",
) -> InterpolationResult:
    """Encode ``x_a`` and ``x_b`` (each (*shape)), interpolate their latents, decode the path.

    The end points of the decoded path reproduce ``x_a`` and ``x_b`` up to the ODE's error.
    """
    if num_points < 2:
        raise ValueError(f"num_points must be >= 2, got {num_points}")
    ends = torch.stack([x_a, x_b])
    latents = encode(diffusion, score_fn, ends, config).latent
    fractions = torch.linspace(0, 1, num_points, dtype=x_a.dtype, device=x_a.device)
    path_latents = interpolate_latents(diffusion, latents[0], latents[1], fractions, mode=mode)
    decoded = decode(diffusion, score_fn, path_latents, config, denoise=False).x
    return InterpolationResult(path=decoded, latents=path_latents, fractions=fractions)
