"""Radial functions of interatomic distance: Gaussian basis and smooth cutoff."""

from __future__ import annotations

import torch
from torch import nn


class GaussianRBF(nn.Module):
    """Fixed Gaussian radial basis on ``[0, cutoff]``.

    ``phi_k(d) = exp(-(d - mu_k)^2 / (2 w^2))`` with ``num_rbf`` equally spaced
    centres ``mu_k`` and width ``w`` equal to their spacing.

    Parameters
    ----------
    num_rbf
        Number of basis functions ``R``.
    cutoff
        Largest centre, Å.
    """

    def __init__(self, num_rbf: int, cutoff: float) -> None:
        super().__init__()
        centres = torch.linspace(0.0, cutoff, num_rbf, dtype=torch.float64)
        width = cutoff / max(num_rbf - 1, 1)
        self.register_buffer("centres", centres.float())
        self.inv_two_width_sq = 1.0 / (2.0 * width * width)

    def forward(self, distances: torch.Tensor) -> torch.Tensor:
        """``(E,)`` distances in Å → ``(E, R)`` basis values in [0, 1]."""
        diff = distances[:, None] - self.centres.to(distances.dtype)
        return torch.exp(-self.inv_two_width_sq * diff * diff)


def smooth_cutoff(distances: torch.Tensor, cutoff: float) -> torch.Tensor:
    """Polynomial envelope ``u(x) = (1 - x)^3 (1 + 3x + 6x^2)`` with ``x = d / cutoff``.

    ``u(0) = 1``, ``u`` decreases monotonically to ``u(1) = 0`` with vanishing first
    and second derivatives at the cutoff, and is 0 beyond it. The factored form
    stays strictly positive for ``d < cutoff`` even in float32.

    Parameters
    ----------
    distances
        Any shape, Å.
    cutoff
        Å.

    Returns
    -------
    torch.Tensor
        Same shape as ``distances``, values in [0, 1].
    """
    x = (distances / cutoff).clamp(0.0, 1.0)
    one_minus = 1.0 - x
    return one_minus ** 3 * (1.0 + 3.0 * x + 6.0 * x * x)
