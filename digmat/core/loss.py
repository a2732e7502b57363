"""Denoising score matching in DiG's score form and the equivalent noise (eps) form.

For x_t ~ p(x_t | x_0) at t ~ U[t_min, 1] the loss is

    L = E_t E_{x_0, x_t} [ sum_d lambda_d(t) (s_theta(x_t, t)_d - grad log p(x_t | x_0)_d)^2 ] / D,

with the exact conditional score (Gaussian on Euclidean entries, wrapped normal on periodic
ones). With ``weighting="sigma2"`` (lambda = std_d(t)^2) this equals the eps-prediction
loss || eps_theta - eps ||^2 on Euclidean entries (Ho et al. 2020) and its wrapped
analogue on periodic ones; ``weighting="none"`` is the raw score form. A model may output
either parameterization.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from .analytic import ProductMixture
from .diffusion import Diffusion

__all__ = ["DSMLoss", "DenoisingProfile", "NoisedBatch", "denoising_profile", "noise_batch", "pooled_target", "score_matching_error", "dsm_loss",
           "target_score_blend", "target_score_loss", "WEIGHTINGS", "PARAMETERIZATIONS"]

WEIGHTINGS = ("sigma2", "none")
PARAMETERIZATIONS = ("score", "eps")


@dataclass
class DSMLoss:
    """The scalar ``loss`` and per-sample values (B,) with the times ``t`` (B,) they were drawn at."""

    loss: Tensor
    per_sample: Tensor
    t: Tensor


@dataclass
class NoisedBatch:
    """Noised states ``xt`` (B, *shape) at times ``t`` (B,), the exact conditional score
    ``target`` and the per-entry noise std ``std`` (both (B, *shape))."""

    xt: Tensor
    t: Tensor
    target: Tensor
    std: Tensor


def noise_batch(diffusion: Diffusion, x0: Tensor, *, t: Tensor | None = None, time_power: float = 1.0,
                generator: torch.Generator | None = None) -> NoisedBatch:
    """Draw t (stratified on [t_min, 1], see :meth:`Diffusion.sample_time`, unless given) and
    x_t ~ p(x_t | x_0), with the DSM target."""
    diffusion.space.check(x0, "x0")
    if t is None:
        t = diffusion.sample_time(x0.shape[0], power=time_power, generator=generator, device=x0.device, dtype=x0.dtype)
    xt, _ = diffusion.perturb(x0, t, generator=generator)
    return NoisedBatch(xt=xt, t=t, target=diffusion.conditional_score(xt, x0, t), std=diffusion.noise_std(t, x0))


def pooled_target(diffusion: Diffusion, noised: NoisedBatch, pool: Tensor, *, width: float = 1e-4) -> NoisedBatch:
    """``noised`` with its target replaced by the exact score of the empirical distribution of ``pool``.

    DSM regresses on grad log p(x_t | x_0) of the one x_0 that made x_t; its minimiser is the
    posterior mean of that target over x_0 given x_t, which for a finite data set is

        grad log p_t(x_t) = sum_j softmax_j( log p(x_t | x_j) ) grad log p(x_t | x_j),

    the sum over the data points x_j of the same distribution (a "stable target field", Xu et
    al., ICLR 2023). Regressing on that sum instead has the same minimiser and no variance from
    the draw of x_0; the difference is largest at the noise levels where x_t could have come from
    several modes. The pool should hold the samples ``x0`` were drawn from (the sample's own
    x_0 included), all from one distribution.

    Parameters
    ----------
    noised
        From :func:`noise_batch`, (B, *shape).
    pool
        (M, *shape) samples of the data distribution.
    width
        Std of each pool point's component (state units); small against the lowest noise std,
        it keeps the components proper densities.

    Returns
    -------
    NoisedBatch
        Same ``xt``, ``t`` and ``std``; ``target`` (B, *shape) the pooled score.
    """
    if tuple(pool.shape[1:]) != tuple(noised.xt.shape[1:]) or pool.shape[0] < 1:
        raise ValueError(f"pool must have shape (M, {', '.join(map(str, noised.xt.shape[1:]))}), got {tuple(pool.shape)}")
    mixture = ProductMixture(diffusion, torch.ones(pool.shape[0], dtype=torch.float64), pool.detach(),
                             torch.full(pool.shape, width, dtype=torch.float64))
    return NoisedBatch(xt=noised.xt, t=noised.t, target=mixture.score(noised.xt, noised.t), std=noised.std)


def score_matching_error(
    noised: NoisedBatch,
    score: Tensor,
    *,
    weighting: str | Callable[[Tensor, Tensor], Tensor] = "sigma2",
    mask: Tensor | None = None,
) -> Tensor:
    """Per-sample weighted squared error (B,) of a predicted score against the DSM target."""
    if isinstance(weighting, str) and weighting not in WEIGHTINGS:
        raise ValueError(f"weighting must be one of {WEIGHTINGS} or a callable, got {weighting!r}")
    if score.shape != noised.target.shape:
        raise ValueError(f"model output has shape {tuple(score.shape)}, expected {tuple(noised.target.shape)}")
    if weighting == "sigma2":
        lam = noised.std**2
    elif weighting == "none":
        lam = torch.ones_like(noised.std)
    else:
        lam = weighting(noised.t, noised.std)
    sq = lam * (score - noised.target) ** 2
    batch = sq.shape[0]
    m = torch.ones_like(sq) if mask is None else mask.to(sq).expand_as(sq)
    return (sq * m).reshape(batch, -1).sum(1) / m.reshape(batch, -1).sum(1).clamp_min(1.0)


def dsm_loss(
    diffusion: Diffusion,
    model: Callable[[Tensor, Tensor], Tensor],
    x0: Tensor,
    *,
    parameterization: str = "eps",
    weighting: str | Callable[[Tensor, Tensor], Tensor] = "sigma2",
    t: Tensor | None = None,
    mask: Tensor | None = None,
    generator: torch.Generator | None = None,
) -> DSMLoss:
    """Denoising score-matching loss of ``model`` on clean states ``x0`` (B, *shape).

    Parameters
    ----------
    model
        ``(x_t, t) -> output`` of shape (B, *shape): a score (``parameterization="score"``)
        or a noise prediction (``"eps"``, converted to a score by s = -eps/std).
    weighting
        ``"sigma2"``, ``"none"`` or a callable ``(t (B,), std (B, *shape)) -> lambda (B, *shape)``.
    t
        Diffusion times (B,); stratified uniform draws on [t_min, 1] if omitted.
    mask
        Optional (B, *shape) 0/1 weights selecting valid entries (padding excluded); the loss
        is averaged over valid entries of each sample.
    """
    if parameterization not in PARAMETERIZATIONS:
        raise ValueError(f"parameterization must be one of {PARAMETERIZATIONS}, got {parameterization!r}")
    if isinstance(weighting, str) and weighting not in WEIGHTINGS:
        raise ValueError(f"weighting must be one of {WEIGHTINGS} or a callable, got {weighting!r}")
    noised = noise_batch(diffusion, x0, t=t, generator=generator)
    out = model(noised.xt, noised.t)
    if out.shape != x0.shape:
        raise ValueError(f"model output has shape {tuple(out.shape)}, expected {tuple(x0.shape)}")
    score = diffusion.eps_to_score(out, noised.t) if parameterization == "eps" else out
    per_sample = score_matching_error(noised, score, weighting=weighting, mask=mask)
    return DSMLoss(loss=per_sample.mean(), per_sample=per_sample, t=noised.t)


def target_score_blend(diffusion: Diffusion, noised: NoisedBatch, grad0: Tensor, score_scale: float | Tensor) -> tuple[Tensor, Tensor]:
    """The target and weight of target score matching blended with DSM, at noised states.

    For x_t ~ p(x_t | x_0) the marginal score is a posterior mean in two ways,

        grad log p_t(x_t) = E[ grad log p_0(x_0) / c(t) | x_t ] = E[ grad log p(x_t | x_0) | x_t ],

    with c(t) the entry's signal coefficient (alpha(t) on Euclidean entries, 1 on periodic ones,
    where the noise is additive). The first ("target score matching", TSM) has a low variance at
    low noise, where the second (DSM) blows up like 1/std^2; DSM is better at high noise. Any
    blend ``lambda * TSM + (1 - lambda) * DSM`` with lambda independent of x_0 and x_t has the
    same minimiser, the exact score; here per entry

        lambda = c^2 / (c^2 + std^2 g^2),   g = ``score_scale``,

    which equalises the two targets' variance proxies g^2 / c^2 and 1 / std^2, and the squared
    error is weighted by the inverse of the blend's proxy, 1 / (lambda^2 g^2 / c^2 + (1 - lambda)^2 / std^2)
    (-> std^2, the DSM weighting, at high noise; -> c^2 / g^2, a relative error, at low noise).

    Parameters
    ----------
    noised
        From :func:`noise_batch` on the samples ``x0``.
    grad0
        (B, *shape) the target score ``grad log p_0`` at ``x0`` (e.g. -grad E / kT).
    score_scale
        g > 0, the typical size of a ``grad0`` entry: a number (e.g. the root mean square over
        the sample set) or a tensor broadcastable to (B, *shape) — per entry (entries in
        different units) and per sample (e.g. ``1 / kT`` of each sample's temperature). It must
        not depend on the sample's own ``x0``, or the minimiser moves.

    Returns
    -------
    (target, weight), both (B, *shape).
    """
    if grad0.shape != noised.xt.shape:
        raise ValueError(f"grad0 has shape {tuple(grad0.shape)}, expected {tuple(noised.xt.shape)}")
    g = torch.as_tensor(score_scale, dtype=grad0.dtype, device=grad0.device)
    if not (torch.isfinite(g).all() and (g > 0).all()):
        raise ValueError("score_scale must be positive and finite")
    g2 = torch.broadcast_to(g, grad0.shape) ** 2
    coef2 = diffusion.signal_coef(noised.t, grad0) ** 2
    std2 = noised.std**2
    lam = coef2 / (coef2 + std2 * g2)
    target = lam * grad0 / coef2.sqrt() + (1 - lam) * noised.target
    weight = 1.0 / (lam**2 * g2 / coef2 + (1 - lam) ** 2 / std2)
    return target, weight


def target_score_loss(
    diffusion: Diffusion,
    score_fn: Callable[[Tensor, Tensor], Tensor],
    x0: Tensor,
    grad0: Tensor,
    *,
    score_scale: float | Tensor,
    t: Tensor | None = None,
    time_power: float = 1.0,
    generator: torch.Generator | None = None,
) -> DSMLoss:
    """Score matching on samples whose target score is known: target score matching blended with
    DSM (:func:`target_score_blend`), minimised by the exact score.

    Parameters
    ----------
    score_fn
        ``(x_t, t) -> score`` (B, *shape), differentiable in the model's parameters.
    x0, grad0
        (B, *shape) samples of the target and its score ``grad log p_0`` there (e.g. -grad E / kT).
    score_scale
        g > 0 (see :func:`target_score_blend`).
    t, time_power, generator
        As in :func:`noise_batch`.

    Returns
    -------
    :class:`DSMLoss` (per-sample mean over entries of the weighted squared error).
    """
    noised = noise_batch(diffusion, x0, t=t, time_power=time_power, generator=generator)
    target, weight = target_score_blend(diffusion, noised, grad0, score_scale)
    score = score_fn(noised.xt, noised.t)
    if score.shape != x0.shape:
        raise ValueError(f"model output has shape {tuple(score.shape)}, expected {tuple(x0.shape)}")
    per_sample = (weight * (score - target) ** 2).reshape(x0.shape[0], -1).mean(1)
    return DSMLoss(loss=per_sample.mean(), per_sample=per_sample, t=noised.t)


@dataclass
class DenoisingProfile:
    """Noise-prediction error at fixed diffusion times, summed over samples and entries.

    Attributes
    ----------
    t
        (K,) diffusion times.
    error, reference
        ``{group: (K,) tensor}``: sum of squared errors ||eps_theta - eps*||^2 and of
        ||eps*||^2 over the group's entries (eps* = -std * exact conditional score).
    """

    t: Tensor
    error: dict[str, Tensor]
    reference: dict[str, Tensor]

    def relative(self) -> dict[str, Tensor]:
        """``{group: (K,)}`` relative error: 0 = exact, 1 = no better than predicting zero."""
        return {k: self.error[k] / self.reference[k].clamp_min(1e-30) for k in self.error}

    def merge(self, other: DenoisingProfile) -> DenoisingProfile:
        """Sum of two profiles at the same times (e.g. over systems of different sizes)."""
        if not torch.allclose(self.t, other.t) or self.error.keys() != other.error.keys():
            raise ValueError("profiles must share their times and groups")
        return DenoisingProfile(self.t, {k: self.error[k] + other.error[k] for k in self.error},
                                {k: self.reference[k] + other.reference[k] for k in self.error})


@torch.no_grad()
def denoising_profile(
    diffusion: Diffusion,
    eps_model: Callable[[Tensor, Tensor], Tensor],
    x0: Tensor,
    times: Tensor,
    *,
    groups: dict[str, Tensor] | None = None,
    generator: torch.Generator | None = None,
) -> DenoisingProfile:
    """How well a noise prediction ``eps_model(x_t, t)`` denoises clean states at each time.

    The diagnostic behind DSM training: per time, the error of the noise prediction relative to
    the exact conditional noise. Where the data distribution is a point mass (one structure)
    the optimum is 0; for a distribution with several modes it is the Bayes error of telling
    them apart at that noise level.

    Parameters
    ----------
    x0
        (B, *shape) clean states.
    times
        (K,) diffusion times; every state is noised once per time.
    groups
        ``{name: (*shape) 0/1 mask}`` entry groups reported separately (default: ``"all"``).
    """
    groups = groups or {"all": torch.ones(x0.shape[1:], dtype=x0.dtype, device=x0.device)}
    error = {k: torch.zeros(len(times), dtype=torch.float64) for k in groups}
    reference = {k: torch.zeros(len(times), dtype=torch.float64) for k in groups}
    masks = {k: mask.to(x0) for k, mask in groups.items()}
    for i, t in enumerate(times):
        noised = noise_batch(diffusion, x0, t=torch.full((x0.shape[0],), float(t), dtype=x0.dtype, device=x0.device), generator=generator)
        target = -noised.std * noised.target
        sq_err = (eps_model(noised.xt, noised.t) - target) ** 2
        for k, m in masks.items():
            error[k][i] = float((sq_err * m).sum())
            reference[k][i] = float((target**2 * m).sum())
    return DenoisingProfile(times.detach().cpu().to(torch.float64), error, reference)
