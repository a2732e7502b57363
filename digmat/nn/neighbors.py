"""Vectorised neighbour search over lattice images for batches of systems.

For every real atom ``i`` (receiver) we list every atom ``j`` of the same system
and every lattice translation ``n`` (integers, non-zero only along periodic
axes) with ``|r_j + n @ cell - r_i| < cutoff``. ``j`` is the *home* index of a
real atom or of one of its lattice images; ``i`` itself (``n = 0``, the
self-edge) and ``i``'s own images are included.

How far to look
---------------
Write a displacement in fractional coordinates of a full-rank cell, ``d = f @ L``.
Its length is at least ``|f_k| / |b_k|`` for every axis, where ``b_k`` is the
``k``-th reciprocal vector (``1/|b_k|`` is the spacing of lattice planes).
After wrapping both atoms into the cell (``f`` in ``(-1, 1)``), the images
within ``cutoff`` therefore satisfy ``|f_k + n_k| <= cutoff * |b_k|``, which
gives a per-pair integer interval of ``n_k``. A cell thinner than the cutoff
automatically gets several shells. Non-periodic axes get ``n_k = 0``; their
rows of the cell are replaced by orthonormal completions for the fractional
arithmetic only, so any (even zero) vacuum vector works.

Wrapping only decides which integer shifts to test. Displacements are computed
from the input positions and cell as ``r_j - r_i + shift @ cell``, so they are
differentiable with respect to both, and ``shift`` refers to the input
(possibly unwrapped) positions.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Neighbors:
    """Edges of a periodic radius graph (``E`` edges, ``B`` systems).

    Attributes
    ----------
    receivers
        ``(E,)`` long, index ``i`` of the real (query) atom.
    senders
        ``(E,)`` long, home index ``j`` of the real or image atom.
    shifts
        ``(E, 3)`` long, lattice translation ``n``: the image sits at
        ``r_j + n @ cell``.
    vectors
        ``(E, 3)`` displacement ``r_j + n @ cell - r_i`` in Å (differentiable).
    distances
        ``(E,)`` ``|vectors|`` in Å (0 for self-edges, with a finite gradient).
    image_shells
        ``(B, 3)`` long, the number of lattice-image shells searched along each
        axis, ``ceil(cutoff / plane spacing)`` (0 on non-periodic axes).
    """

    receivers: torch.Tensor
    senders: torch.Tensor
    shifts: torch.Tensor
    vectors: torch.Tensor
    distances: torch.Tensor
    image_shells: torch.Tensor

    @property
    def num_edges(self) -> int:
        return int(self.receivers.shape[0])


def complete_cell(cell: torch.Tensor, pbc: torch.Tensor) -> torch.Tensor:
    """Replace non-periodic lattice rows by orthonormal vectors completing the basis.

    Parameters
    ----------
    cell
        ``(B, 3, 3)`` lattice vectors (rows), Å.
    pbc
        ``(B, 3)`` bool.

    Returns
    -------
    torch.Tensor
        ``(B, 3, 3)`` full-rank cell, equal to ``cell`` on periodic rows.
        Not differentiable (used only to choose integer shifts).
    """
    with torch.no_grad():
        cell = cell.detach()
        periodic_rows = cell * pbc[..., None]
        # Right singular vectors with zero singular value span the orthogonal
        # complement of the periodic rows (singular values are sorted descending).
        _, _, vh = torch.linalg.svd(periodic_rows)
        rank = pbc.sum(dim=1, keepdim=True)                          # (B,1)
        order = torch.cumsum((~pbc).long(), dim=1) - 1               # rank among free rows
        index = (rank + order).clamp(max=2)                          # (B,3)
        completion = torch.gather(vh, 1, index[..., None].expand(-1, -1, 3))
        return torch.where(pbc[..., None], cell, completion)


def _safe_norm(vectors: torch.Tensor) -> torch.Tensor:
    """Euclidean norm with a zero (not NaN) gradient at the zero vector."""
    sq = (vectors * vectors).sum(dim=-1)
    nonzero = sq > 0
    safe_sq = torch.where(nonzero, sq, torch.ones_like(sq))
    return torch.where(nonzero, safe_sq.sqrt(), torch.zeros_like(sq))


def periodic_neighbors(
    positions: torch.Tensor,
    cell: torch.Tensor,
    pbc: torch.Tensor,
    batch: torch.Tensor,
    natoms: torch.Tensor,
    cutoff: float,
) -> Neighbors:
    """All (atom, atom-or-image) pairs closer than ``cutoff``, for a whole batch.

    Parameters
    ----------
    positions
        ``(N, 3)`` Cartesian positions, Å; may lie outside the cell.
    cell
        ``(B, 3, 3)`` lattice vectors as rows, Å.
    pbc
        ``(B, 3)`` bool periodicity per lattice vector.
    batch
        ``(N,)`` long system index of each atom (atoms of a system contiguous).
    natoms
        ``(B,)`` long atoms per system.
    cutoff
        Radius in Å (strict: pairs at exactly ``cutoff`` are excluded).

    Returns
    -------
    Neighbors
        Edges sorted by receiver, then sender, then shift.

    Notes
    -----
    Memory and time scale as ``sum_b natoms_b**2`` candidate pairs times the
    number of shifts each pair can reach, ``prod_k (2 cutoff / spacing_k + 1)``
    at most. This is exact and fully vectorised; it is meant for systems of up
    to a few hundred atoms each.
    """
    if not cutoff > 0:
        raise ValueError(f"cutoff must be positive, got {cutoff}")
    device = positions.device
    dtype = positions.dtype
    num_sys = natoms.shape[0]
    ptr = torch.cat([natoms.new_zeros(1), torch.cumsum(natoms, 0)])

    with torch.no_grad():
        full = complete_cell(cell, pbc)                              # (B,3,3)
        volume = torch.linalg.det(full).abs()
        if bool((volume <= 1e-10 * full.norm(dim=2).prod(dim=1)).any()):
            raise ValueError("cell is singular along its periodic axes")
        inv = torch.linalg.inv(full)                                 # columns = reciprocal vectors
        recip_norm = inv.norm(dim=1)                                 # (B,3) = 1/plane spacing
        reach = cutoff * recip_norm * pbc                            # (B,3) in units of cells
        image_shells = torch.ceil(reach - 1e-12).clamp_min(0).long() * pbc

        frac = torch.einsum("ni,nij->nj", positions.detach(), inv[batch])
        home = torch.floor(frac) * pbc[batch]                        # integer cell of each atom
        wrapped = frac - home

        # All ordered pairs (i, j) inside each system.
        pairs_per_sys = natoms * natoms
        pair_sys = torch.repeat_interleave(torch.arange(num_sys, device=device), pairs_per_sys)
        pair_ptr = torch.cat([natoms.new_zeros(1), torch.cumsum(pairs_per_sys, 0)])
        local = torch.arange(pair_sys.shape[0], device=device) - pair_ptr[pair_sys]
        n_of_pair = natoms[pair_sys]
        recv = ptr[pair_sys] + torch.div(local, n_of_pair, rounding_mode="floor")
        send = ptr[pair_sys] + local % n_of_pair

        # Integer shifts n with |f + n| <= reach for f = wrapped_j - wrapped_i.
        f = wrapped[send] - wrapped[recv]
        slack = 1e-6 * (1.0 + reach[pair_sys])                        # never miss a boundary pair
        lo = torch.ceil(-reach[pair_sys] - f - slack)
        hi = torch.floor(reach[pair_sys] - f + slack)
        periodic = pbc[pair_sys]
        lo = torch.where(periodic, lo, torch.zeros_like(lo)).long()
        hi = torch.where(periodic, hi, torch.zeros_like(hi)).long()
        counts = (hi - lo + 1).clamp_min(0)                            # (P,3)
        total = counts.prod(dim=1)

        # Expand every pair into its candidate shifts (mixed-radix decoding).
        cand_pair = torch.repeat_interleave(torch.arange(total.shape[0], device=device), total)
        cand_ptr = torch.cat([total.new_zeros(1), torch.cumsum(total, 0)])
        m = torch.arange(cand_pair.shape[0], device=device) - cand_ptr[cand_pair]
        c = counts[cand_pair]
        n0 = m % c[:, 0]
        m = torch.div(m, c[:, 0], rounding_mode="floor")
        n1 = m % c[:, 1]
        n2 = torch.div(m, c[:, 1], rounding_mode="floor")
        n_wrapped = lo[cand_pair] + torch.stack([n0, n1, n2], dim=1)   # shift between wrapped atoms
        recv_c = recv[cand_pair]
        send_c = send[cand_pair]
        # Translate to the input coordinates: w = r - home @ cell.
        shift = n_wrapped + home[recv_c].long() - home[send_c].long()
        sys_c = pair_sys[cand_pair]

        # Cheap pre-filter with detached geometry to keep the graph small.
        vec_detached = (positions.detach()[send_c] - positions.detach()[recv_c]
                        + torch.einsum("ei,eij->ej", shift.to(dtype), cell.detach()[sys_c]))
        keep = (vec_detached * vec_detached).sum(dim=1) < cutoff * cutoff
        recv_c, send_c, shift, sys_c = recv_c[keep], send_c[keep], shift[keep], sys_c[keep]

    vectors = positions[send_c] - positions[recv_c] + torch.einsum(
        "ei,eij->ej", shift.to(dtype), cell[sys_c])
    distances = _safe_norm(vectors)
    return Neighbors(
        receivers=recv_c,
        senders=send_c,
        shifts=shift,
        vectors=vectors,
        distances=distances,
        image_shells=image_shells,
    )
