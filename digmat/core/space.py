"""State spaces: products of Euclidean lines and circles (tori).

A diffusion state is a tensor of shape ``(B, *shape)``. Each entry of the event
``shape`` is either Euclidean (``period == 0``) or periodic with period L > 0 — e.g. the
fractional in-plane coordinates of an adsorbate on a slab (L = 1) or a crystal's
fractional coordinates. The prior is N(0, 1) on Euclidean entries and uniform on
[0, L) on periodic ones.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import Tensor

from .torus import wrap, wrap_centered

__all__ = ["StateSpace"]


@dataclass(frozen=True, eq=False)
class StateSpace:
    """Shape and topology of a diffusion state.

    Parameters
    ----------
    shape
        Event shape of one state, e.g. ``(n_atoms, 3)``.
    period
        Tensor broadcastable to ``shape``: 0 for Euclidean entries, L > 0 for entries on a
        circle of circumference L. ``None`` means fully Euclidean.
    noise_scale
        Tensor broadcastable to ``shape`` giving c in the periodic noise std c * sigma_tilde(t)
        (same units as the coordinate). Defaults to the period, so the periodic noise is
        sigma_tilde(t) periods and the marginal is uniform once sigma_tilde >~ 1.
        Ignored on Euclidean entries.
    """

    shape: tuple[int, ...]
    period: Tensor | None = None
    noise_scale: Tensor | None = None
    _period: Tensor = field(init=False, repr=False)
    _scale: Tensor = field(init=False, repr=False)

    def __post_init__(self) -> None:
        shape = tuple(int(s) for s in self.shape)
        if not shape or any(s < 1 for s in shape):
            raise ValueError(f"state shape must be non-empty with positive sizes, got {self.shape}")
        object.__setattr__(self, "shape", shape)
        period = torch.zeros(shape, dtype=torch.float64)
        if self.period is not None:
            p = torch.as_tensor(self.period, dtype=torch.float64)
            try:
                period = torch.broadcast_to(p, shape).clone()
            except RuntimeError as exc:
                raise ValueError(f"period of shape {tuple(p.shape)} does not broadcast to {shape}") from exc
        if not torch.isfinite(period).all() or (period < 0).any():
            raise ValueError("periods must be finite and >= 0 (0 marks a Euclidean entry)")
        scale = period.clone()
        if self.noise_scale is not None:
            scale = torch.broadcast_to(torch.as_tensor(self.noise_scale, dtype=torch.float64), shape).clone()
            if ((scale <= 0) & (period > 0)).any():
                raise ValueError("noise_scale must be > 0 on periodic entries")
        scale = torch.where(period > 0, scale, torch.ones_like(scale))
        object.__setattr__(self, "_period", period)
        object.__setattr__(self, "_scale", scale)

    # ------------------------------------------------------------------ constructors
    @classmethod
    def euclidean(cls, *shape: int) -> StateSpace:
        """A fully Euclidean space of event shape ``shape``."""
        return cls(tuple(shape))

    @classmethod
    def torus(cls, *shape: int, period: float = 1.0) -> StateSpace:
        """A fully periodic space (every entry on a circle of circumference ``period``)."""
        return cls(tuple(shape), period=torch.full(tuple(shape), float(period)))

    # ------------------------------------------------------------------ properties
    @property
    def numel(self) -> int:
        """Number of scalar entries of one state."""
        return math.prod(self.shape)

    def periods(self, like: Tensor) -> Tensor:
        """Periods (0 = Euclidean) on ``like``'s device and dtype, shape ``shape``."""
        return self._period.to(device=like.device, dtype=like.dtype)

    def torus_mask(self, like: Tensor | None = None) -> Tensor:
        """Boolean mask of periodic entries, shape ``shape``."""
        mask = self._period > 0
        return mask if like is None else mask.to(like.device)

    def torus_scale(self, like: Tensor) -> Tensor:
        """Periodic noise scale c (1 on Euclidean entries), shape ``shape``."""
        return self._scale.to(device=like.device, dtype=like.dtype)

    @property
    def has_torus(self) -> bool:
        return bool((self._period > 0).any())

    @property
    def num_euclidean(self) -> int:
        return int((self._period == 0).sum())

    # ------------------------------------------------------------------ geometry
    def check(self, x: Tensor, name: str = "x") -> Tensor:
        """Validate a batch ``(B, *shape)`` of states: right shape, finite values."""
        if not isinstance(x, Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
        if tuple(x.shape[1:]) != self.shape:
            raise ValueError(f"{name} has shape {tuple(x.shape)}, expected (batch, {', '.join(map(str, self.shape))})")
        if not x.is_floating_point():
            raise ValueError(f"{name} must be floating point, got {x.dtype}")
        if not torch.isfinite(x).all():
            raise ValueError(f"{name} contains NaN or infinite values")
        return x

    def wrap(self, x: Tensor) -> Tensor:
        """Wrap periodic entries into [0, L); Euclidean entries unchanged."""
        if not self.has_torus:
            return x
        period = self.periods(x)
        mask = self.torus_mask(x)
        return torch.where(mask, wrap(x, torch.where(mask, period, torch.ones_like(period))), x)

    def difference(self, x: Tensor, y: Tensor) -> Tensor:
        """x - y, with periodic entries mapped to the shortest signed arc in [-L/2, L/2)."""
        d = x - y
        if not self.has_torus:
            return d
        period = self.periods(d)
        mask = self.torus_mask(d)
        return torch.where(mask, wrap_centered(d, torch.where(mask, period, torch.ones_like(period))), d)

    # ------------------------------------------------------------------ prior
    def sample_prior(
        self,
        num: int,
        *,
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> Tensor:
        """Draw ``num`` states from the prior: N(0, 1) on Euclidean, U[0, L) on periodic entries."""
        device = torch.device(device) if device is not None else torch.device("cpu")
        gen_device = generator.device if generator is not None else device
        z = torch.randn((num, *self.shape), generator=generator, device=gen_device, dtype=dtype).to(device)
        if self.has_torus:
            u = torch.rand((num, *self.shape), generator=generator, device=gen_device, dtype=dtype).to(device)
            z = torch.where(self.torus_mask(z), u * self.periods(z), z)
        return z

    def prior_log_prob(self, x: Tensor) -> Tensor:
        """Log-density of the prior, summed over the event, shape ``(B,)``."""
        mask = self.torus_mask(x)
        gauss = -0.5 * x**2 - 0.5 * math.log(2 * math.pi)
        period = self.periods(x)
        uniform = -torch.log(torch.where(mask, period, torch.ones_like(period)))
        per_entry = torch.where(mask, uniform.expand_as(x), gauss)
        return per_entry.reshape(x.shape[0], -1).sum(-1)
