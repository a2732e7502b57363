"""Analytic targets with exact scores at every diffusion time, for validating samplers.

:class:`ProductMixture` is a mixture of K components, each a product over state entries of
a normal (Euclidean entries) or a wrapped normal (periodic entries). Under the forward
process of :class:`~digmat.core.diffusion.Diffusion` it stays a mixture of the same form:

    Euclidean entry:  N(alpha mu, alpha^2 v + sigma^2)
    periodic entry:   WN(mu, v + c^2 sigma_tilde^2)

so its log-density, score and component posteriors are exact at any t. Users can run
digmat's samplers against it to check a new schedule, solver or state space.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from .diffusion import Diffusion, ScoreFn
from .torus import wrapped_normal_log_prob_and_score

__all__ = ["ProductMixture"]


@dataclass(frozen=True, eq=False)
class ProductMixture:
    """Mixture of axis-aligned (wrapped) normal components on a state space.

    Parameters
    ----------
    diffusion
        Supplies the state space (which entries are periodic) and the forward process.
    weights
        (K,) mixture weights (normalised internally).
    means
        (K, *shape) component means (on periodic entries any real value; used modulo L).
    stds
        (K, *shape) component standard deviations, > 0.
    """

    diffusion: Diffusion
    weights: Tensor
    means: Tensor
    stds: Tensor

    def __post_init__(self) -> None:
        shape = self.diffusion.space.shape
        w = torch.as_tensor(self.weights, dtype=torch.float64)
        if w.ndim != 1 or (w <= 0).any():
            raise ValueError("weights must be a 1-D tensor of positive numbers")
        k = w.shape[0]
        for name in ("means", "stds"):
            v = torch.as_tensor(getattr(self, name), dtype=torch.float64)
            if tuple(v.shape) != (k, *shape):
                raise ValueError(f"{name} must have shape {(k, *shape)}, got {tuple(v.shape)}")
            object.__setattr__(self, name, v)
        if (self.stds <= 0).any():
            raise ValueError("stds must be > 0")
        object.__setattr__(self, "weights", w / w.sum())

    @property
    def num_components(self) -> int:
        return self.weights.shape[0]

    def _params(self, t: Tensor | None, like: Tensor) -> tuple[Tensor, Tensor]:
        """Component means and stds at time t, each (B, K, *shape)."""
        mu = self.means.to(like).unsqueeze(0)
        sd = self.stds.to(like).unsqueeze(0)
        if t is None:
            return mu.expand(like.shape[0], *mu.shape[1:]), sd.expand(like.shape[0], *sd.shape[1:])
        d = self.diffusion
        t = torch.as_tensor(t, dtype=like.dtype, device=like.device).expand(like.shape[0])
        a = d.signal_coef(t, like).unsqueeze(1)
        noise = d.noise_std(t, like).unsqueeze(1)
        return a * mu, torch.sqrt((a * sd) ** 2 + noise**2)

    def _entry_terms(self, x: Tensor, t: Tensor | None) -> tuple[Tensor, Tensor]:
        """Per-entry log-densities and scores of every component, each (B, K, *shape)."""
        space = self.diffusion.space
        mu, sd = self._params(t, x)
        xe = x.unsqueeze(1)
        logp = -0.5 * ((xe - mu) / sd) ** 2 - torch.log(sd) - 0.5 * math.log(2 * math.pi)
        score = -(xe - mu) / sd**2
        if space.has_torus:
            mask = space.torus_mask(x)
            period = torch.where(mask, space.periods(x), torch.ones_like(space.periods(x)))
            wn_logp, wn_score = wrapped_normal_log_prob_and_score(xe, mu, sd, period)
            logp = torch.where(mask, wn_logp, logp)
            score = torch.where(mask, wn_score, score)
        return logp, score

    def component_log_joint(self, x: Tensor, t: Tensor | None = None) -> Tensor:
        """log w_k + log p_k,t(x), shape (B, K)."""
        logp, _ = self._entry_terms(x, t)
        return torch.log(self.weights.to(x)) + logp.reshape(*logp.shape[:2], -1).sum(-1)

    def component_posterior(self, x: Tensor, t: Tensor | None = None) -> Tensor:
        """p(k | x_t), shape (B, K)."""
        return torch.softmax(self.component_log_joint(x, t), dim=1)

    def log_prob(self, x: Tensor, t: Tensor | None = None) -> Tensor:
        """log p_t(x), shape (B,); ``t=None`` is the data distribution itself."""
        return torch.logsumexp(self.component_log_joint(x, t), dim=1)

    def score(self, x: Tensor, t: Tensor | None = None) -> Tensor:
        """grad_x log p_t(x), shape (B, *shape)."""
        logp, score = self._entry_terms(x, t)
        joint = torch.log(self.weights.to(x)) + logp.reshape(*logp.shape[:2], -1).sum(-1)
        r = torch.softmax(joint, dim=1).reshape(*joint.shape, *([1] * (x.ndim - 1)))
        return (r * score).sum(1)

    def score_fn(self) -> ScoreFn:
        """The exact score as a ``(x, t) -> score`` callable for the samplers."""
        return lambda x, t: self.score(x, t)

    def sample(self, num: int, *, generator: torch.Generator | None = None, dtype=torch.float64) -> tuple[Tensor, Tensor]:
        """Exact samples from the data distribution and their component labels, (num, *shape) and (num,)."""
        labels = torch.multinomial(self.weights, num, replacement=True, generator=generator)
        eps = torch.randn((num, *self.diffusion.space.shape), generator=generator, dtype=torch.float64)
        x = self.means[labels] + self.stds[labels] * eps
        return self.diffusion.space.wrap(x).to(dtype), labels
