"""Invariant input embedding of atoms: element, role, diffusion time, conditions, surroundings."""

from __future__ import annotations

import math

import torch
from torch import nn

from digmat.nn.config import GraphormerConfig


class SinusoidalTimeEmbedding(nn.Module):
    """Sinusoidal features of the diffusion time followed by a two-layer MLP.

    Features are ``sin(w_k t), cos(w_k t)`` with ``time_embed_dim / 2`` angular
    frequencies ``w_k`` log-spaced in ``[1, 1000]``, so ``t`` in [0, 1] is
    resolved both coarsely and finely.

    Parameters
    ----------
    time_embed_dim
        Number of sinusoidal features (even).
    embed_dim
        Output width ``D``.
    """

    def __init__(self, time_embed_dim: int, embed_dim: int) -> None:
        super().__init__()
        half = time_embed_dim // 2
        freqs = torch.exp(torch.linspace(0.0, math.log(1000.0), half, dtype=torch.float64))
        self.register_buffer("freqs", freqs.float())
        self.mlp = nn.Sequential(
            nn.Linear(time_embed_dim, embed_dim), nn.SiLU(), nn.Linear(embed_dim, embed_dim))

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        """``(B,)`` times → ``(B, D)``."""
        angles = t[:, None] * self.freqs.to(t.dtype)
        return self.mlp(torch.cat([angles.sin(), angles.cos()], dim=-1))


class AtomEncoder(nn.Module):
    """Initial per-atom features ``h_i^0`` (all rotation/translation invariant).

    ``h_i^0 = E_Z[Z_i] + E_tag[tag_i] + T(t_b) + C(c_b) + W log(1 + sum_j u(d_ij) phi(d_ij))``

    where ``b`` is the system of atom ``i``, ``T`` the time embedding, ``C`` an
    MLP on the conditioning scalars, and the last term a learned projection of
    the smoothly cut-off radial distribution of neighbours (real and image atoms),
    which tells each atom about its coordination before any attention.

    Parameters
    ----------
    config
        Network configuration.
    """

    def __init__(self, config: GraphormerConfig) -> None:
        super().__init__()
        d = config.embed_dim
        self.element = nn.Embedding(config.max_z + 1, d)
        self.tag = nn.Embedding(config.num_tags, d)
        self.time = SinusoidalTimeEmbedding(config.time_embed_dim, d)
        self.condition = (
            nn.Sequential(nn.Linear(config.num_conditions, d), nn.SiLU(), nn.Linear(d, d))
            if config.num_conditions > 0 else None)
        self.neighborhood = nn.Linear(config.num_rbf, d)

    def forward(
        self,
        numbers: torch.Tensor,
        tags: torch.Tensor,
        batch: torch.Tensor,
        t: torch.Tensor,
        conditions: torch.Tensor | None,
        rbf: torch.Tensor,
        envelope: torch.Tensor,
        receivers: torch.Tensor,
    ) -> torch.Tensor:
        """Compute ``(N, D)`` features.

        Parameters
        ----------
        numbers, tags, batch
            ``(N,)`` long.
        t
            ``(B,)`` diffusion times.
        conditions
            ``(B, num_conditions)`` or ``None``.
        rbf
            ``(E, R)`` radial basis of edge distances.
        envelope
            ``(E,)`` smooth cutoff of edge distances.
        receivers
            ``(E,)`` receiving atom of each edge.
        """
        per_system = self.time(t)
        if self.condition is not None and conditions is not None:
            per_system = per_system + self.condition(conditions)
        density = torch.zeros(numbers.shape[0], rbf.shape[1], dtype=rbf.dtype, device=rbf.device)
        density = density.index_add(0, receivers, envelope[:, None] * rbf)
        return (self.element(numbers) + self.tag(tags) + per_system[batch]
                + self.neighborhood(torch.log1p(density)))
