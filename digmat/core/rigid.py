"""Diffusion of a rigid body with internal coordinates: a flat state times a rotation, on one clock.

A state is a :class:`RigidState` ``(x, R)``: ``x`` (B, D) lives on a :class:`StateSpace`
(Euclidean entries — e.g. a centroid in units of a length scale — and periodic ones — e.g.
torsions) and follows that space's :class:`Diffusion`; ``R`` (B, 3, 3) is an orientation and
follows the variance-exploding Brownian motion of :class:`~.so3.SO3Schedule`. Both are noised
by the same t, independently, so the conditional score is the pair of the two conditional
scores — the product-space construction of DiffDock (Corso et al. 2023).

Noise predictions: a model predicts eps_x (the flat space's noise, as everywhere in the core)
and eps_R = -sigma_R(t) s_R, a 3-vector in the left-action (world) frame with s_R the rotation
score. For small sigma_R, IGSO3 is a Gaussian of std sigma_R per axis and eps_R ~ N(0, I_3); for
large sigma_R the target goes to 0 (the Haar prior has no score), so both targets stay O(1).

The reverse chain takes the flat ancestral step (:func:`.sde.ancestral_step`) and the group's
ancestral step (:func:`.so3.ancestral_rotation_step`) on the same time grid.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import Tensor

from .diffusion import Diffusion
from .sde import ancestral_step
from .so3 import SO3Schedule, ancestral_rotation_step, igso3_sample, igso3_score, random_rotations

__all__ = ["RigidDiffusion", "RigidLoss", "RigidScoreFn", "RigidState", "rigid_dsm_loss", "sample_rigid_sde"]


class RigidState(NamedTuple):
    """A batch of states: flat entries ``x`` (B, D) and rotations ``R`` (B, 3, 3)."""

    x: Tensor
    R: Tensor


RigidScoreFn = Callable[[RigidState, Tensor], tuple[Tensor, Tensor]]
"""``(state, t (B,)) -> (score_x (B, D), score_R (B, 3))``, the rotation score in the world frame."""


@dataclass(frozen=True, eq=False)
class RigidDiffusion:
    """The product forward process: ``flat`` on x, ``rotation`` on R, one t.

    Parameters
    ----------
    flat
        Diffusion of the flat entries (its schedule's t_min and step grid are used for both).
    rotation
        The SO(3) noise schedule: sigma_R(t) rad, geometric between its sigma_min and sigma_max.
    rotation_scale
        If given, sigma_R(t) = rotation_scale * sigma_tilde(t) of the flat schedule instead, clipped to
        [rotation.sigma_min, rotation.sigma_max] (0 at t = 0): the orientation is noised on the same
        clock as the Euclidean entries. For a body of radius r (in the flat entries' length unit) a
        turn of sigma_R moves its atoms by about r sigma_R, so 1/r matches the two noise levels.
    """

    flat: Diffusion
    rotation: SO3Schedule = SO3Schedule()
    rotation_scale: float | None = None

    def __post_init__(self) -> None:
        if self.rotation_scale is not None and not self.rotation_scale > 0:
            raise ValueError(f"rotation_scale must be > 0, got {self.rotation_scale}")

    def sample_prior(self, num: int, *, generator: torch.Generator | None = None, device=None,
                     dtype: torch.dtype = torch.float32) -> RigidState:
        """``num`` draws from the prior: the flat prior times Haar rotations."""
        x = self.flat.space.sample_prior(num, generator=generator, device=device, dtype=dtype)
        R = random_rotations(num, generator=generator, dtype=dtype).to(x.device)
        return RigidState(x, R)

    def rotation_sigma(self, t: Tensor) -> Tensor:
        """sigma_R(t) (B,), rad, in t's dtype."""
        t64 = torch.as_tensor(t, dtype=torch.float64)
        if self.rotation_scale is None:
            return self.rotation.sigma(t64).to(t.dtype)
        tied = (self.rotation_scale * self.flat.schedule.sigma_tilde(t64)).clamp(self.rotation.sigma_min,
                                                                                 self.rotation.sigma_max)
        return torch.where(t64 > 0, tied, torch.zeros_like(tied)).to(t.dtype)

    def rotation_variance_rate(self, s: Tensor) -> Tensor:
        """d sigma_R^2 / ds (rad^2 per unit s) at the flat schedule's noise-to-signal ratio ``s``
        (float64, any shape): the rotation's clock in the variable of the probability-flow ODE.

        Tied (``rotation_scale`` c): 2 c^2 s where c s lies strictly inside [sigma_min, sigma_max],
        0 where the clip holds sigma_R fixed. Own schedule: g_R(t)^2 dt/ds with
        dt/ds = 2 s / (beta(t) (1 + s^2)) (from s^2 = exp(-2 log alpha(t)) - 1).
        """
        s = torch.as_tensor(s, dtype=torch.float64)
        if self.rotation_scale is not None:
            c = self.rotation_scale
            inside = (c * s > self.rotation.sigma_min) & (c * s < self.rotation.sigma_max)
            return torch.where(inside, 2 * c * c * s, torch.zeros_like(s))
        sched = self.flat.schedule
        t = sched.t_of_sigma_tilde(s)
        return self.rotation.g2(t) * 2 * s / (sched.beta(t) * (1 + s * s))

    def rotation_kinks(self) -> tuple[float, ...]:
        """Noise levels s where :meth:`rotation_variance_rate` jumps (the clip's ends, tied clock only)."""
        if self.rotation_scale is None:
            return ()
        return (self.rotation.sigma_min / self.rotation_scale, self.rotation.sigma_max / self.rotation_scale)

    def perturb(self, state: RigidState, t: Tensor, *, generator: torch.Generator | None = None
                ) -> tuple[RigidState, Tensor, Tensor]:
        """Draw x_t, R_t given (x_0, R_0) at times ``t`` (B,).

        Returns
        -------
        The noised state, the flat noise eps_x (B, D) and the rotation target eps_R (B, 3) =
        -sigma_R(t) grad log p(R_t | R_0).
        """
        xt, eps_x = self.flat.perturb(state.x, t, generator=generator)
        sigma = self.rotation_sigma(t.to(torch.float64))
        noise = igso3_sample(len(t), sigma, generator, dtype=torch.float64, device=state.R.device)
        score = igso3_score(noise, sigma)
        Rt = noise.to(state.R.dtype) @ state.R
        return RigidState(xt, Rt), eps_x, (-sigma[:, None] * score).to(state.R.dtype)

    def eps_to_score(self, eps_x: Tensor, eps_R: Tensor, t: Tensor) -> tuple[Tensor, Tensor]:
        """Scores (score_x (B, D), score_R (B, 3)) of noise predictions."""
        return self.flat.eps_to_score(eps_x, t), -eps_R / self.rotation_sigma(t)[:, None]


@dataclass
class RigidLoss:
    """Denoising score matching of a rigid state: ``loss`` = ``flat`` + ``rotation_weight`` · ``rotation``
    (each a mean squared noise-prediction error per entry), and per-sample errors for profiles."""

    loss: Tensor
    flat: Tensor
    rotation: Tensor
    t: Tensor
    per_sample_flat: Tensor
    per_sample_rotation: Tensor


def rigid_dsm_loss(
    diffusion: RigidDiffusion,
    predict: Callable[[RigidState, Tensor], tuple[Tensor, Tensor]],
    state0: RigidState,
    *,
    t: Tensor | None = None,
    time_power: float = 1.0,
    rotation_weight: float = 1.0,
    weights: Tensor | None = None,
    generator: torch.Generator | None = None,
) -> RigidLoss:
    """Noise-prediction loss of ``predict(state_t, t) -> (eps_x, eps_R)`` on clean states ``state0``.

    ``t`` defaults to stratified times (:meth:`Diffusion.sample_time` with ``time_power``);
    ``weights`` (B,) are per-sample importance weights (normalised here).
    """
    B = state0.x.shape[0]
    if t is None:
        t = diffusion.flat.sample_time(B, power=time_power, generator=generator, device=state0.x.device,
                                       dtype=state0.x.dtype)
    noised, eps_x, eps_R = diffusion.perturb(state0, t, generator=generator)
    pred_x, pred_R = predict(noised, t)
    err_x = ((pred_x - eps_x) ** 2).mean(-1)
    err_R = ((pred_R - eps_R) ** 2).mean(-1)
    w = torch.full_like(err_x, 1.0 / B) if weights is None else weights / weights.sum()
    flat, rot = (w * err_x).sum(), (w * err_R).sum()
    return RigidLoss(flat + rotation_weight * rot, flat, rot, t, err_x.detach(), err_R.detach())


@torch.no_grad()
def sample_rigid_sde(
    diffusion: RigidDiffusion,
    score_fn: RigidScoreFn,
    num: int,
    *,
    steps: int = 200,
    grid_power: float = 1.0,
    generator: torch.Generator | None = None,
    device=None,
    dtype: torch.dtype = torch.float32,
    init: RigidState | None = None,
) -> RigidState:
    """``num`` samples by the reverse ancestral chain on both factors (``steps`` score evaluations).

    ``init`` replaces the prior draw at t = 1; ``grid_power`` > 1 spends more steps at low noise.
    """
    state = diffusion.sample_prior(num, generator=generator, device=device, dtype=dtype) if init is None else init
    x, R = diffusion.flat.space.check(state.x, "init.x"), state.R
    if R.shape != (num, 3, 3):
        raise ValueError(f"init.R has shape {tuple(R.shape)}, expected ({num}, 3, 3)")
    chain = diffusion.flat.schedule.discretize(steps, power=grid_power)
    times = chain["t"].tolist()
    sigmas = diffusion.rotation_sigma(chain["t"]).tolist()
    for i in range(steps, 0, -1):
        t = torch.full((num,), times[i], dtype=x.dtype, device=x.device)
        score_x, score_R = score_fn(RigidState(x, R), t)
        x = ancestral_step(diffusion.flat, x, score_x, chain, i, generator=generator)
        R = ancestral_rotation_step(R, sigmas[i], sigmas[i - 1], score_R, generator, noise=i > 1)
    return RigidState(x, R)
