"""Property-guided sampling: score + lambda * grad_x log p(c | x_t).

Bayes' rule gives the score of the conditional p_t(x | c) as
grad log p_t(x) + grad log p_t(c | x). With an exact noisy-state likelihood and
``scale = 1`` any sampler then draws from p(x | c); ``scale != 1`` sharpens or flattens
the condition (p(x) p(c | x)^scale). The likelihood can be any differentiable function;
:func:`gaussian_property_likelihood` builds the common one, a Gaussian of width ``w``
around a predictor's value, evaluated either on x_t itself or on Tweedie's denoised
estimate of x_0 (for predictors trained on clean structures only).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from .diffusion import Diffusion, ScoreFn

__all__ = ["LogLikelihoodFn", "guided_score", "gaussian_property_likelihood"]

LogLikelihoodFn = Callable[[Tensor, Tensor], Tensor]
"""``(x (B, *shape), t (B,)) -> log p(c | x_t) (B,)``, differentiable in x."""


def guided_score(score_fn: ScoreFn, log_likelihood: LogLikelihoodFn, scale: float = 1.0) -> ScoreFn:
    """Wrap ``score_fn`` into the score of the condition-tilted distribution.

    Parameters
    ----------
    score_fn
        Unconditional score ``(x, t) -> grad_x log p_t(x)``.
    log_likelihood
        ``(x, t) -> log p(c | x_t)`` of shape (B,).
    scale
        Guidance strength lambda (1 = exact Bayes posterior).
    """

    def score(x: Tensor, t: Tensor) -> Tensor:
        with torch.enable_grad():
            xg = x.detach().requires_grad_(True)
            ll = log_likelihood(xg, t)
            if ll.shape != (x.shape[0],):
                raise ValueError(f"log_likelihood must return shape ({x.shape[0]},), got {tuple(ll.shape)}")
            (grad,) = torch.autograd.grad(ll.sum(), xg)
        return score_fn(x, t) + scale * grad.detach()

    return score


def gaussian_property_likelihood(
    predictor: Callable[..., Tensor],
    target: float | Tensor,
    width: float,
    *,
    diffusion: Diffusion | None = None,
    score_fn: ScoreFn | None = None,
    on: str = "noisy",
) -> LogLikelihoodFn:
    """log p(c | x) = -(f(x) - c)^2 / (2 w^2) for a property predictor f.

    Parameters
    ----------
    predictor
        ``on="noisy"``: ``f(x_t, t) -> (B,)`` (a noise-aware predictor);
        ``on="denoised"``: ``f(x0_hat) -> (B,)`` applied to Tweedie's estimate
        x0_hat = (x + std^2 s(x, t)) / alpha, which needs ``diffusion`` and ``score_fn``
        (gradients flow through the score).
    target, width
        Target property value c and likelihood width w (same units as the property).
    """
    if width <= 0:
        raise ValueError(f"width must be > 0, got {width}")
    if on not in ("noisy", "denoised"):
        raise ValueError(f"on must be 'noisy' or 'denoised', got {on!r}")
    if on == "denoised" and (diffusion is None or score_fn is None):
        raise ValueError("on='denoised' needs the diffusion and the unconditional score_fn")

    def log_likelihood(x: Tensor, t: Tensor) -> Tensor:
        if on == "noisy":
            value = predictor(x, t)
        else:
            assert diffusion is not None and score_fn is not None
            value = predictor(diffusion.denoise(x, t, score_fn(x, t)))
        return -0.5 * ((value - torch.as_tensor(target, dtype=value.dtype, device=value.device)) / width) ** 2

    return log_likelihood
