"""Dihedral angles and the sides of a bond in a molecular graph, shared by peptides and ligands.

Numpy: angles of any number of frames at once, and the atoms a rotation about a bond moves.
Torch: the same angle (:func:`dihedral_tensor`) and torsions set by rigid rotations of the
moving atoms (:func:`set_torsions`), batched and differentiable; torch is imported when they
run, so the numpy half stays light for torch-free callers (the reference recipes).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from torch import Tensor

__all__ = ["dihedral_angles", "dihedral_tensor", "moving_side", "set_torsions"]


def dihedral_angles(positions: np.ndarray, quads: np.ndarray) -> np.ndarray:
    """Dihedral angles in radians, (−π, π].

    Parameters
    ----------
    positions : ndarray, shape (..., N, 3)
        Positions (any length unit), any number of leading frame dimensions.
    quads : ndarray of int, shape (M, 4)
        Atom indices of each dihedral.

    Returns
    -------
    ndarray, shape (..., M)
    """
    positions = np.asarray(positions, dtype=float)
    quads = np.asarray(quads, dtype=int).reshape(-1, 4)
    p0, p1, p2, p3 = (positions[..., quads[:, k], :] for k in range(4))
    b0, b1, b2 = p0 - p1, p2 - p1, p3 - p2
    b1n = b1 / np.linalg.norm(b1, axis=-1, keepdims=True)
    v = b0 - np.sum(b0 * b1n, axis=-1, keepdims=True) * b1n
    w = b2 - np.sum(b2 * b1n, axis=-1, keepdims=True) * b1n
    x = np.sum(v * w, axis=-1)
    y = np.sum(np.cross(b1n, v) * w, axis=-1)
    return np.arctan2(y, x)


def moving_side(neighbours: list[list[int]], j: int, k: int) -> np.ndarray:
    """Indices of the atoms on ``k``'s side of bond j–k (``k`` included).

    Raises
    ------
    ValueError
        If j–k is in a ring (no side can turn alone).
    """
    seen, stack = {k}, [k]
    while stack:
        a = stack.pop()
        for b in neighbours[a]:
            if a == k and b == j:
                continue
            if b == j:
                raise ValueError(f"bond {j}-{k} is in a ring: its dihedral cannot be set alone")
            if b not in seen:
                seen.add(b)
                stack.append(b)
    return np.array(sorted(seen))


def dihedral_tensor(p0: Tensor, p1: Tensor, p2: Tensor, p3: Tensor) -> Tensor:
    """Dihedral angle p0–p1–p2–p3 in radians, (−π, π], of points ``(..., 3)`` (torch, batched)."""
    import torch

    b0, b1, b2 = p0 - p1, p2 - p1, p3 - p2
    b1n = b1 / b1.norm(dim=-1, keepdim=True)
    v = b0 - (b0 * b1n).sum(-1, keepdim=True) * b1n
    w = b2 - (b2 * b1n).sum(-1, keepdim=True) * b1n
    return torch.atan2((torch.cross(b1n, v, dim=-1) * w).sum(-1), (v * w).sum(-1))


def set_torsions(positions: Tensor, quads: Sequence[Sequence[int]], moving: Sequence[Tensor], angles: Tensor) -> Tensor:
    """Positions with torsions set by rigid rotations (bond lengths and angles kept).

    Torsion m (atoms i, j, k, l) is set to ``angles[:, m]`` by rotating the atoms ``moving[m]``
    (those on k's side of the j–k bond, :func:`moving_side`) about that bond.  A rotation never
    changes a torsion set before it, so the order does not matter.

    Parameters
    ----------
    positions : Tensor, shape (B, N, 3)
        Starting conformations (not modified).
    quads : sequence of (i, j, k, l)
    moving : sequence of Tensor of int
        Atom indices each torsion moves.
    angles : Tensor, shape (B, M)
        Radians.

    Returns
    -------
    Tensor, shape (B, N, 3)
    """
    from digmat.core.so3 import exp_map

    x = positions.clone()
    for m, (i, j, k, l) in enumerate(quads):
        axis = x[:, k] - x[:, j]
        axis = axis / axis.norm(dim=-1, keepdim=True)
        delta = angles[:, m] - dihedral_tensor(x[:, i], x[:, j], x[:, k], x[:, l])
        turn = exp_map(axis * delta[:, None])
        side = moving[m]
        x[:, side] = (x[:, side] - x[:, k, None]) @ turn.transpose(1, 2) + x[:, k, None]
    return x
