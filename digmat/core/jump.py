"""Mode-jumping Metropolis–Hastings moves: an independence proposal on some entries of the state.

MALA moves a chain a fraction of a basin per step, so a chain started in one basin stays
there for as long as the barrier takes to cross; replica exchange only helps when the hot
rungs cross. :class:`MixtureJump` proposes, for a chosen subset of a state's entries (e.g. an
adsorbate's in-plane position and height), a fresh value drawn independently of the current
one from a mixture of Gaussians centred on candidate basins (wrapped on periodic entries) plus
a uniform floor over a box; the other entries stay. :func:`mixture_jump` accepts it with

    min(1, u(x') q(x) / (u(x) q(x'))),

the Metropolis–Hastings ratio of an independence sampler, so the target ``u`` stays exactly
invariant whatever the centres are — they only decide how often jumps land (Tierney 1994,
*Ann. Stat.* 22, 1701). The uniform floor keeps ``q`` positive everywhere in the box, so no
basin the centres miss is excluded from a jump's reverse move. One jump costs one evaluation
of ``log u`` and its gradient per chain (the gradient is kept for the next MALA step).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from .mcmc import LogTargetFn, log_target_and_grad
from .space import StateSpace
from .torus import wrapped_normal_log_prob

__all__ = ["JumpResult", "MixtureJump", "mixture_jump"]


@dataclass(frozen=True)
class MixtureJump:
    """Independence proposal for the entries ``index`` of a flat state.

    Parameters
    ----------
    index
        (k,) positions, in the flattened state, of the entries a jump replaces.
    centres
        (K, k) the mixture's centres on those entries (state units; wrapped on periodic ones).
    scale
        (k,) standard deviation of every Gaussian component, per entry (state units), > 0.
    low, high
        (k,) box of the uniform component on Euclidean entries (ignored on periodic entries,
        where it is the whole period).
    uniform
        Weight of the uniform component, in [0, 1).
    """

    index: Tensor
    centres: Tensor
    scale: Tensor
    low: Tensor
    high: Tensor
    uniform: float = 0.1

    def __post_init__(self) -> None:
        k = self.index.numel()
        if self.index.ndim != 1 or k == 0 or self.index.dtype not in (torch.int32, torch.int64):
            raise ValueError("index must be a non-empty 1-D integer tensor")
        if self.centres.ndim != 2 or self.centres.shape[1] != k or self.centres.shape[0] == 0:
            raise ValueError(f"centres must be (K, {k}) with K >= 1, got {tuple(self.centres.shape)}")
        for name in ("scale", "low", "high"):
            if getattr(self, name).shape != (k,):
                raise ValueError(f"{name} must have shape ({k},), got {tuple(getattr(self, name).shape)}")
        if not (self.scale > 0).all():
            raise ValueError("scale must be > 0")
        if not 0.0 <= self.uniform < 1.0:
            raise ValueError(f"uniform must be in [0, 1), got {self.uniform!r}")
        if self.uniform > 0 and not (self.high > self.low).all():
            raise ValueError("the uniform component needs high > low on every entry")

    def _parts(self, space: StateSpace, like: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
        period = space.periods(like).reshape(-1)[self.index.to(like.device)]
        periodic = period > 0
        f = dict(dtype=like.dtype, device=like.device)
        return (period, periodic, self.centres.to(**f), self.scale.to(**f), self.low.to(**f), self.high.to(**f))

    def sample(self, space: StateSpace, n: int, like: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """(n, k) draws on the entries ``index`` (periodic entries wrapped into [0, L))."""
        period, periodic, centres, scale, low, high = self._parts(space, like)
        gen_device = generator.device if generator is not None else like.device
        f = dict(generator=generator, device=gen_device, dtype=like.dtype)
        k = self.index.numel()
        pick = torch.randint(centres.shape[0], (n,), generator=generator, device=gen_device).to(like.device)
        gauss = centres[pick] + scale * torch.randn(n, k, **f).to(like.device)
        box_low = torch.where(periodic, torch.zeros_like(low), low)
        box_width = torch.where(periodic, period, high - low)
        flat = box_low + box_width * torch.rand(n, k, **f).to(like.device)
        use_uniform = (torch.rand(n, **f).to(like.device) < self.uniform)[:, None]
        y = torch.where(use_uniform, flat, gauss)
        safe = torch.where(periodic, period, torch.ones_like(period))
        return torch.where(periodic, torch.remainder(y, safe), y)

    def log_prob(self, space: StateSpace, y: Tensor) -> Tensor:
        """log q(y) (n,) of values (n, k) on the entries ``index`` (per unit of the state's entries)."""
        period, periodic, centres, scale, low, high = self._parts(space, y)
        safe = torch.where(periodic, period, torch.ones_like(period))
        diff = y[:, None, :] - centres[None]                                   # (n, K, k)
        flat_normal = -0.5 * (diff / scale) ** 2 - torch.log(scale) - 0.5 * math.log(2 * math.pi)
        wrapped = wrapped_normal_log_prob(y[:, None, :].expand_as(diff), centres[None].expand_as(diff), scale, safe)
        per_entry = torch.where(periodic, wrapped, flat_normal)
        log_gauss = torch.logsumexp(per_entry.sum(-1), dim=1) - math.log(centres.shape[0])
        if self.uniform == 0:
            return log_gauss
        inside = (periodic | ((y >= low) & (y <= high))).all(-1)
        width = torch.where(periodic, period, high - low)
        log_flat = torch.where(inside, -torch.log(width).sum().expand(y.shape[0]), torch.full_like(log_gauss, -math.inf))
        return torch.logaddexp(math.log1p(-self.uniform) + log_gauss, math.log(self.uniform) + log_flat)


@dataclass
class JumpResult:
    """States after one jump per chain (B, *shape), whether each chain's jump was accepted (B,),
    ``log u`` and its gradient at the new states, and the evaluations spent."""

    x: Tensor
    accepted: Tensor
    log_target: Tensor
    grad: Tensor
    evaluations: int


def mixture_jump(space: StateSpace, log_target: LogTargetFn, x: Tensor, jump: MixtureJump, *,
                 start: tuple[Tensor, Tensor] | None = None, generator: torch.Generator | None = None) -> JumpResult:
    """One independence Metropolis–Hastings step per chain on the entries ``jump.index``.

    Parameters
    ----------
    x
        (B, *shape) current states.
    start
        ``(log u(x), grad log u(x))`` if already known (not evaluated again).
    """
    space.check(x, "x")
    batch = x.shape[0]
    evaluations = 0
    if start is None:
        logu, grad = log_target_and_grad(log_target, x)
        evaluations += batch
    else:
        logu, grad = start
    flat = x.reshape(batch, -1)
    index = jump.index.to(x.device)
    new_part = jump.sample(space, batch, x, generator)
    proposal = flat.clone()
    proposal[:, index] = new_part
    proposal = proposal.reshape(x.shape)
    logu_p, grad_p = log_target_and_grad(log_target, proposal)
    evaluations += batch
    log_ratio = logu_p - logu + jump.log_prob(space, flat[:, index]) - jump.log_prob(space, new_part)
    gen_device = generator.device if generator is not None else x.device
    u = torch.rand(batch, generator=generator, device=gen_device, dtype=x.dtype).to(x.device)
    accept = torch.isfinite(logu_p) & (torch.log(u) < log_ratio)
    a = accept.reshape(-1, *([1] * (x.ndim - 1)))
    return JumpResult(x=torch.where(a, proposal, x), accepted=accept, log_target=torch.where(accept, logu_p, logu),
                      grad=torch.where(a, grad_p, grad), evaluations=evaluations)
