"""The Fokker–Planck equation of the forward process, and its residual for a model.

Per state entry i the forward SDE of :class:`~digmat.core.diffusion.Diffusion` is

    dx_i = -a_i(t) x_i dt + sqrt(2 D_i(t)) dB_i,

with ``a = D = beta/2`` on Euclidean entries (the VP SDE) and ``a = 0``,
``D = c^2 beta / (2 alpha^2)`` on periodic ones (the wrapped VE SDE, whose variance
``c^2 sigma_tilde^2`` grows at ``d(c^2 sigma_tilde^2)/dt = c^2 beta / alpha^2``). The marginal
log-density ``l = log p_t`` then obeys

    d l / dt = sum_i a_i + sum_i a_i x_i s_i + sum_i D_i (d s_i / d x_i + s_i^2),     s = grad_x l,

and the score obeys the gradient of the same equation (the *score Fokker–Planck equation*,
Lai et al. 2023):

    d s / dt = grad_x [ sum_i a_i x_i s_i + sum_i D_i (d s_i / d x_i + s_i^2) ].

Periodic entries carry no drift, so no coordinate is ever multiplied by an unwrapped value.
A model that satisfies the equation at every (x, t) and matches the target at t = 0 is the
diffusion of the target: this is what physics-informed diffusion pre-training (PIDP, DiG's
second way of learning; :mod:`.pidp`) minimises. Both residuals are divided by the mean of D over
the state's entries (beta/2 on a Euclidean state: the clock ``tau = -log alpha``), so that every
term stays O(1) at any t — on periodic entries D grows as 1/alpha^2, ~2e4 times beta/2 at t = 1.

The divergence ``sum_i D_i d s_i / d x_i`` is exact (one backward pass per entry) or
Hutchinson's estimate ``E_v[(D v)^T J v]`` with Rademacher probes ``v`` (one pass per probe).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from .diffusion import Diffusion, ScoreFn

__all__ = ["DIVERGENCES", "LogDensityFn", "fpe_coefficients", "log_density_residual", "potential_score", "score_residual"]

DIVERGENCES = ("exact", "hutchinson")

LogDensityFn = Callable[[Tensor, Tensor], Tensor]
"""An unnormalised log-density ``(x (B, *shape), t (B,)) -> l (B,)``, differentiable in x and t."""


def _per_sample(v: Tensor, like: Tensor) -> Tensor:
    """A per-sample value (B,) broadcast over ``like``'s entries (B, *shape)."""
    return v.reshape(-1, *([1] * (like.ndim - 1))).to(like).expand_as(like)


def fpe_coefficients(diffusion: Diffusion, t: Tensor, like: Tensor) -> tuple[Tensor, Tensor]:
    """Drift rate ``a`` and diffusion coefficient ``D`` per entry, each of ``like``'s shape (B, *shape)."""
    beta = _per_sample(diffusion.schedule.beta(t), like)
    a = 0.5 * beta
    if not diffusion.space.has_torus:
        return a, a
    mask = diffusion.space.torus_mask(like)
    alpha2 = _per_sample(diffusion.schedule.alpha(t), like) ** 2
    d_torus = 0.5 * diffusion.space.torus_scale(like) ** 2 * beta / alpha2
    return torch.where(mask, torch.zeros_like(a), a), torch.where(mask, d_torus, a)


def _clock_rate(diff: Tensor) -> Tensor:
    """Mean diffusion coefficient over a state's entries (B,): the residuals' unit of time."""
    return diff.reshape(diff.shape[0], -1).mean(-1)


def _weighted_divergence(score: Tensor, x: Tensor, weight: Tensor, divergence: str, probes: int,
                         generator: torch.Generator | None) -> Tensor:
    """sum_i weight_i d score_i / d x_i per sample (B,), differentiable (create_graph)."""
    batch = x.shape[0]
    flat_s = score.reshape(batch, -1)
    flat_w = weight.reshape(batch, -1)
    if divergence == "exact":
        total = torch.zeros(batch, dtype=x.dtype, device=x.device)
        for i in range(flat_s.shape[1]):
            (g,) = torch.autograd.grad(flat_s[:, i].sum(), x, create_graph=True)
            total = total + flat_w[:, i] * g.reshape(batch, -1)[:, i]
        return total
    total = torch.zeros(batch, dtype=x.dtype, device=x.device)
    gen_device = generator.device if generator is not None else x.device
    for _ in range(probes):
        v = (torch.randint(0, 2, flat_s.shape, generator=generator, device=gen_device) * 2 - 1).to(x)
        (g,) = torch.autograd.grad((flat_s * flat_w * v).sum(), x, create_graph=True)
        total = total + (g.reshape(batch, -1) * v).sum(-1)
    return total / probes


def _check(diffusion: Diffusion, x: Tensor, t: Tensor, divergence: str, probes: int) -> None:
    diffusion.space.check(x, "x")
    if t.shape != (x.shape[0],):
        raise ValueError(f"t must have shape ({x.shape[0]},), got {tuple(t.shape)}")
    if divergence not in DIVERGENCES:
        raise ValueError(f"divergence must be one of {DIVERGENCES}, got {divergence!r}")
    if probes < 1:
        raise ValueError(f"probes must be >= 1, got {probes}")


def log_density_residual(diffusion: Diffusion, log_density: LogDensityFn, x: Tensor, t: Tensor, *,
                         divergence: str = "exact", probes: int = 1,
                         generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    """Residual of the Fokker–Planck equation for a log-density model, in the tau clock.

    Parameters
    ----------
    log_density
        ``(x, t) -> l (B,)``; l may differ from log p_t by a constant that does not depend on t.
    x, t
        Collocation points (B, *shape) and times (B,).

    Returns
    -------
    ``(residual (B,), score (B, *shape))``, both differentiable with respect to the model's
    parameters: ``residual = [dl/dt - sum a - sum a x s - sum D (ds/dx + s^2)] / (beta/2)``.
    """
    _check(diffusion, x, t, divergence, probes)
    x = x.detach().requires_grad_(True)
    t = t.detach().requires_grad_(True)
    value = log_density(x, t)
    if value.shape != (x.shape[0],):
        raise ValueError(f"log_density must return shape ({x.shape[0]},), got {tuple(value.shape)}")
    score, dl_dt = torch.autograd.grad(value.sum(), (x, t), create_graph=True)
    a, diff = fpe_coefficients(diffusion, t.detach(), x)
    div = _weighted_divergence(score, x, diff, divergence, probes, generator)
    batch = x.shape[0]
    drift = (a + a * x.detach() * score + diff * score**2).reshape(batch, -1).sum(-1)
    return (dl_dt - drift - div) / _clock_rate(diff), score


def score_residual(diffusion: Diffusion, score_fn: ScoreFn, x: Tensor, t: Tensor, *, divergence: str = "exact",
                   probes: int = 1, generator: torch.Generator | None = None) -> Tensor:
    """Residual of the score Fokker–Planck equation (B, *shape), in the tau clock.

    ``[ds/dt - grad_x(sum a x s + sum D (ds/dx + s^2))] / (beta/2)``, differentiable with respect
    to the model's parameters. The time derivative is a Jacobian–vector product taken by two
    backward passes, so any autograd-differentiable score model works (third derivatives of
    the network in all).
    """
    _check(diffusion, x, t, divergence, probes)
    x = x.detach().requires_grad_(True)
    t = t.detach().requires_grad_(True)
    score = score_fn(x, t)
    if score.shape != x.shape:
        raise ValueError(f"score_fn must return shape {tuple(x.shape)}, got {tuple(score.shape)}")
    a, diff = fpe_coefficients(diffusion, t.detach(), x)
    div = _weighted_divergence(score, x, diff, divergence, probes, generator)
    batch = x.shape[0]
    phi = (a * x * score + diff * score**2).reshape(batch, -1).sum(-1) + div
    (grad_phi,) = torch.autograd.grad(phi.sum(), x, create_graph=True)
    # ds/dt per sample: d/du of grad_t <u, s> (a JVP by double backward; sample b only sees t_b)
    u = torch.zeros_like(score, requires_grad=True)
    (vjp_t,) = torch.autograd.grad((score * u).sum(), t, create_graph=True)
    (ds_dt,) = torch.autograd.grad(vjp_t.sum(), u, create_graph=True)
    return (ds_dt - grad_phi) / _clock_rate(diff).reshape(-1, *([1] * (x.ndim - 1)))


def potential_score(log_density: LogDensityFn, *, create_graph: bool = False) -> ScoreFn:
    """The score ``grad_x l(x, t)`` of a log-density model as a ``(x, t) -> s`` callable.

    Works inside :func:`torch.no_grad` samplers (gradients are enabled locally); with
    ``create_graph=True`` the score stays differentiable in the model's parameters (training).
    """

    def score(x: Tensor, t: Tensor) -> Tensor:
        with torch.enable_grad():
            xg = x.detach().requires_grad_(True)
            value = log_density(xg, t)
            (grad,) = torch.autograd.grad(value.sum(), xg, create_graph=create_graph)
        return grad if create_graph else grad.detach()

    return score
