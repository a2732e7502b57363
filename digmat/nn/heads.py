"""Output heads: an E(3)-equivariant per-atom vector and invariant scalars."""

from __future__ import annotations

import torch
from torch import nn

from digmat.nn.attention import LocalAttentionWeights
from digmat.nn.config import GraphormerConfig


class VectorHead(nn.Module):
    """Per-atom 3-vector (score or force) as invariant weights times displacements.

    ``v_i = sum_j sum_h a^h_ij (g^h(x_j) + g'^h(x_i)) phi^h(d_ij) r_ij``

    with ``a^h_ij`` a dedicated local attention (as in the blocks), ``g, g'``
    linear maps of the final atom features, ``phi^h`` an MLP of the radial basis
    and ``r_ij = r_j + n @ cell - r_i`` (Å) the displacement to the real or image
    atom. All coefficients are invariant, so ``v`` rotates exactly with the
    input and is unchanged by translations; self-edges contribute nothing
    because ``r_ii = 0``. Units of ``v`` are those the network is trained to
    (e.g. 1/Å for a score, eV/Å for forces).

    Parameters
    ----------
    config
        Network configuration.
    """

    def __init__(self, config: GraphormerConfig) -> None:
        super().__init__()
        d, h = config.embed_dim, config.num_heads
        self.attention = LocalAttentionWeights(d, h)
        self.bias = nn.Linear(config.num_rbf, h)
        self.sender_gate = nn.Linear(d, h)
        self.receiver_gate = nn.Linear(d, h)
        self.radial = nn.Sequential(nn.Linear(config.num_rbf, d), nn.SiLU(), nn.Linear(d, h))

    def forward(
        self,
        x: torch.Tensor,
        receivers: torch.Tensor,
        senders: torch.Tensor,
        vectors: torch.Tensor,
        rbf: torch.Tensor,
        log_envelope: torch.Tensor,
    ) -> torch.Tensor:
        """Return ``(N, 3)`` vectors.

        Parameters
        ----------
        x
            ``(N, D)`` final normalised atom features.
        receivers, senders
            ``(E,)`` edge endpoints.
        vectors
            ``(E, 3)`` displacements ``r_ij`` in Å.
        rbf
            ``(E, R)`` radial basis of ``|r_ij|``.
        log_envelope
            ``(E,)`` log smooth cutoff.
        """
        weights = self.attention(x, receivers, senders, self.bias(rbf), log_envelope)   # (E,H)
        gate = self.sender_gate(x)[senders] + self.receiver_gate(x)[receivers]          # (E,H)
        coeff = (weights * gate * self.radial(rbf)).sum(dim=-1)                          # (E,)
        out = torch.zeros(x.shape[0], 3, dtype=x.dtype, device=x.device)
        return out.index_add(0, receivers, coeff[:, None] * vectors)


class ScalarHead(nn.Module):
    """Invariant scalars per atom, optionally pooled per system.

    ``s_i = MLP(x_i)``; ``"sum"`` gives ``sum_i s_i`` (extensive, e.g. an energy
    in eV), ``"mean"`` the average (intensive), ``"none"`` the per-atom values.

    Parameters
    ----------
    config
        Network configuration (``scalar_out`` outputs, ``scalar_pool``).
    """

    def __init__(self, config: GraphormerConfig) -> None:
        super().__init__()
        d = config.embed_dim
        self.pool = config.scalar_pool
        self.mlp = nn.Sequential(nn.Linear(d, d), nn.SiLU(), nn.Linear(d, config.scalar_out))

    def forward(self, x: torch.Tensor, batch: torch.Tensor, natoms: torch.Tensor) -> torch.Tensor:
        """``(N, D)`` features → ``(B, S)`` pooled or ``(N, S)`` per-atom scalars."""
        per_atom = self.mlp(x)
        if self.pool == "none":
            return per_atom
        pooled = torch.zeros(natoms.shape[0], per_atom.shape[1], dtype=x.dtype, device=x.device)
        pooled = pooled.index_add(0, batch, per_atom)
        if self.pool == "mean":
            pooled = pooled / natoms[:, None].to(x.dtype)
        return pooled
