"""Metropolis-adjusted Langevin (MALA) on a :class:`StateSpace`, counting target evaluations.

Used two ways: as the MCMC baseline that a sampler trained from an energy must beat at equal
cost, and inside PIDP (:mod:`.pidp`) to pull collocation points towards the target. Each
step proposes

    x' = x + h grad log u(x) + sqrt(2 h) z,       z ~ N(0, 1),

wrapped on periodic entries, and accepts it with probability
``min(1, u(x') q(x | x') / (u(x) q(x' | x)))``. On periodic entries the proposal density is the
wrapped normal (exact series, :mod:`.torus`), so the chain leaves ``u`` invariant on the torus
too. One step costs one evaluation of ``log u`` and its gradient per chain.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from .space import StateSpace
from .torus import wrapped_normal_log_prob

__all__ = ["LogTargetFn", "MALAResult", "log_target_and_grad", "mala"]

LogTargetFn = Callable[[Tensor], Tensor]
"""An unnormalised log-density of the target, ``x (B, *shape) -> log u(x) (B,)`` (e.g. -E/kT),
differentiable in x."""


@dataclass
class MALAResult:
    """Final states ``x`` (B, *shape), per-chain acceptance rates (B,), the step sizes used (B,),
    the number of target evaluations (each with its gradient) spent, and the target's
    ``log_target`` (B,) and ``grad`` (B, *shape) at the final states (already paid for: callers
    that need them, e.g. a replay buffer, do not evaluate again)."""

    x: Tensor
    acceptance: Tensor
    step_size: Tensor
    evaluations: int
    log_target: Tensor
    grad: Tensor


def log_target_and_grad(log_target: LogTargetFn, x: Tensor) -> tuple[Tensor, Tensor]:
    """``log u(x)`` (B,) and its gradient (B, *shape), detached; non-finite values become -inf / 0."""
    with torch.enable_grad():
        xg = x.detach().requires_grad_(True)
        value = log_target(xg)
        if value.shape != (x.shape[0],):
            raise ValueError(f"log_target must return shape ({x.shape[0]},), got {tuple(value.shape)}")
        (grad,) = torch.autograd.grad(value.sum(), xg)
    value = value.detach()
    bad = ~torch.isfinite(value) | ~torch.isfinite(grad).reshape(x.shape[0], -1).all(-1)
    value = torch.where(bad, torch.full_like(value, -math.inf), value)
    grad = torch.where(bad.reshape(-1, *([1] * (x.ndim - 1))), torch.zeros_like(grad), grad)
    return value, grad.detach()


def _proposal_log_prob(space: StateSpace, to: Tensor, mean: Tensor, std: Tensor) -> Tensor:
    """log q(to | from) for the Langevin proposal N(mean, std^2), wrapped on periodic entries, (B,)."""
    diff = to - mean
    per_entry = -0.5 * (diff / std) ** 2 - torch.log(std) - 0.5 * math.log(2 * math.pi)
    if space.has_torus:
        mask = space.torus_mask(to)
        period = space.periods(to)
        safe = torch.where(mask, period, torch.ones_like(period))
        wrapped = wrapped_normal_log_prob(to, mean, std, safe)
        per_entry = torch.where(mask, wrapped, per_entry)
    return per_entry.reshape(to.shape[0], -1).sum(-1)


def mala(space: StateSpace, log_target: LogTargetFn, x: Tensor, *, steps: int, step_size: float | Tensor = 1e-2,
         adapt: bool = False, target_acceptance: float = 0.57, adapt_rate: float = 0.05,
         start: tuple[Tensor, Tensor] | None = None, preconditioner: Tensor | None = None,
         generator: torch.Generator | None = None) -> MALAResult:
    """Run ``steps`` MALA steps from ``x`` (B, *shape), one chain per row.

    Proposals are ``N(x + h M grad log u, 2 h M)`` (wrapped on periodic entries) with a constant
    diagonal ``M`` (``preconditioner``; identity by default), accepted by Metropolis–Hastings.

    Parameters
    ----------
    step_size
        h, in squared state units: a number or one per chain (B,).
    preconditioner
        Positive (*shape) diagonal M: entries in different units move on one clock (e.g. the
        squared :meth:`StateSpace.torus_scale`, fractional in-plane coordinates beside heights in Å).
    adapt
        Scale each chain's h by exp(±``adapt_rate``) per step towards ``target_acceptance`` (0.574 is
        optimal in high dimension). Adaptation breaks exact invariance; use it for burn-in only.
    start
        ``(log u(x), grad log u(x))`` ((B,), (B, *shape)) if already known (e.g. the previous
        call's :attr:`MALAResult.log_target` and ``grad``): not evaluated, nor counted, again.
    """
    if steps < 0:
        raise ValueError(f"steps must be >= 0, got {steps}")
    space.check(x, "x")
    batch = x.shape[0]
    h = torch.as_tensor(step_size, dtype=x.dtype, device=x.device).expand(batch).clone()
    if not (h > 0).all():
        raise ValueError("step_size must be > 0")
    if not adapt_rate > 0:
        raise ValueError(f"adapt_rate must be > 0, got {adapt_rate!r}")
    gen_device = generator.device if generator is not None else x.device
    x = x.detach().clone()
    if start is None:
        logu, grad = log_target_and_grad(log_target, x)
        evaluations = batch
    else:
        logu, grad = (v.detach().clone() for v in start)
        if logu.shape != (batch,) or grad.shape != x.shape:
            raise ValueError(f"start must be ((B,), (B, *shape)) for x of shape {tuple(x.shape)}")
        evaluations = 0
    if not torch.isfinite(logu).all():
        raise ValueError("log_target is not finite at some starting states")
    m = torch.ones((), dtype=x.dtype, device=x.device)
    if preconditioner is not None:
        m = torch.as_tensor(preconditioner, dtype=x.dtype, device=x.device)
        if m.shape != tuple(space.shape) or not (torch.isfinite(m).all() and (m > 0).all()):
            raise ValueError(f"preconditioner must be positive and finite, of shape {tuple(space.shape)}")
    accepted = torch.zeros(batch, dtype=x.dtype, device=x.device)
    expand = (-1, *([1] * (x.ndim - 1)))
    for _ in range(steps):
        hb = h.reshape(expand) * m
        std = torch.sqrt(2 * hb).expand_as(x)
        mean_f = x + hb * grad
        z = torch.randn(x.shape, generator=generator, device=gen_device, dtype=x.dtype).to(x.device)
        prop = space.wrap(mean_f + std * z)
        logu_p, grad_p = log_target_and_grad(log_target, prop)
        evaluations += batch
        mean_b = prop + hb * grad_p
        log_ratio = logu_p - logu + _proposal_log_prob(space, x, mean_b, std) - _proposal_log_prob(space, prop, mean_f, std)
        u = torch.rand(batch, generator=generator, device=gen_device, dtype=x.dtype).to(x.device)
        accept = torch.isfinite(logu_p) & (torch.log(u) < log_ratio)
        a = accept.reshape(expand)
        x = torch.where(a, prop, x)
        grad = torch.where(a, grad_p, grad)
        logu = torch.where(accept, logu_p, logu)
        accepted += accept.to(x.dtype)
        if adapt:
            h = h * torch.exp(adapt_rate * (accept.to(x.dtype) - target_acceptance))
    rate = accepted / max(steps, 1)
    return MALAResult(x=x, acceptance=rate, step_size=h, evaluations=evaluations, log_target=logu, grad=grad)
