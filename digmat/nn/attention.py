"""Local multi-head attention over lattice-image edges and the pre-LN transformer block."""

from __future__ import annotations

import math

import torch
from torch import nn

from digmat.nn.config import GraphormerConfig


def segment_softmax(logits: torch.Tensor, index: torch.Tensor, num_segments: int) -> torch.Tensor:
    """Softmax of ``logits`` over all rows sharing the same ``index``.

    Parameters
    ----------
    logits
        ``(E, H)`` scores.
    index
        ``(E,)`` long segment (receiver) of each row, values in ``[0, num_segments)``.
    num_segments
        Number of segments ``N``.

    Returns
    -------
    torch.Tensor
        ``(E, H)`` weights; each segment's rows sum to 1 per column.
    """
    heads = logits.shape[1]
    expanded = index[:, None].expand(-1, heads)
    # The shift does not change the result, so it needs no gradient.
    shift = torch.full((num_segments, heads), -torch.inf, dtype=logits.dtype, device=logits.device)
    shift = shift.scatter_reduce(0, expanded, logits.detach(), reduce="amax", include_self=True)
    expo = torch.exp(logits - shift[index])
    denom = torch.zeros((num_segments, heads), dtype=logits.dtype, device=logits.device)
    denom = denom.index_add(0, index, expo)
    return expo / denom[index]


class LocalAttentionWeights(nn.Module):
    """Per-head attention of each real atom over its neighbours within the cutoff.

    ``a^h_ij = softmax_j( q^h_i . k^h_j / sqrt(d_h) + beta^h_ij + log u(d_ij) )``

    where the softmax runs over the edges of receiver ``i`` (real and image
    atoms), ``k_j`` is computed from the home atom's features (images share
    them), ``beta`` is a learned bias of the distance and ``u`` the smooth
    cutoff, so a neighbour's weight goes continuously to 0 at the cutoff.

    Parameters
    ----------
    embed_dim
        Feature width ``D``.
    num_heads
        Number of heads ``H``.
    """

    def __init__(self, embed_dim: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = embed_dim // num_heads
        self.query = nn.Linear(embed_dim, embed_dim)
        self.key = nn.Linear(embed_dim, embed_dim)

    def forward(
        self,
        x: torch.Tensor,
        receivers: torch.Tensor,
        senders: torch.Tensor,
        bias: torch.Tensor,
        log_envelope: torch.Tensor,
    ) -> torch.Tensor:
        """Return ``(E, H)`` attention weights.

        Parameters
        ----------
        x
            ``(N, D)`` normalised atom features.
        receivers, senders
            ``(E,)`` long edge endpoints (query atom, home atom of the key).
        bias
            ``(E, H)`` distance bias.
        log_envelope
            ``(E,)`` log of the smooth cutoff.
        """
        n = x.shape[0]
        q = self.query(x).view(n, self.num_heads, self.head_dim)
        k = self.key(x).view(n, self.num_heads, self.head_dim)
        logits = (q[receivers] * k[senders]).sum(-1) / math.sqrt(self.head_dim)
        logits = logits + bias + log_envelope[:, None]
        return segment_softmax(logits, receivers, n)


class TransformerBlock(nn.Module):
    """Pre-LN transformer block with local lattice-image attention.

    ``h <- h + W_o sum_j a_ij V LN(h)_j`` then ``h <- h + FFN(LN(h))``.

    Parameters
    ----------
    config
        Network configuration (uses ``embed_dim``, ``num_heads``, ``ffn_dim``).
    """

    def __init__(self, config: GraphormerConfig) -> None:
        super().__init__()
        d = config.embed_dim
        self.num_heads = config.num_heads
        self.head_dim = config.head_dim
        self.attn_norm = nn.LayerNorm(d)
        self.attention = LocalAttentionWeights(d, config.num_heads)
        self.value = nn.Linear(d, d)
        self.attn_out = nn.Linear(d, d)
        self.ffn_norm = nn.LayerNorm(d)
        self.ffn = nn.Sequential(nn.Linear(d, config.ffn_dim), nn.GELU(),
                                 nn.Linear(config.ffn_dim, d))

    def forward(
        self,
        h: torch.Tensor,
        receivers: torch.Tensor,
        senders: torch.Tensor,
        bias: torch.Tensor,
        log_envelope: torch.Tensor,
    ) -> torch.Tensor:
        """``(N, D)`` features → ``(N, D)`` features (see :class:`LocalAttentionWeights`)."""
        n = h.shape[0]
        x = self.attn_norm(h)
        weights = self.attention(x, receivers, senders, bias, log_envelope)     # (E,H)
        values = self.value(x).view(n, self.num_heads, self.head_dim)
        messages = weights[..., None] * values[senders]                       # (E,H,dh)
        agg = torch.zeros_like(values).index_add(0, receivers, messages)
        h = h + self.attn_out(agg.reshape(n, -1))
        return h + self.ffn(self.ffn_norm(h))
