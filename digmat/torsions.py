"""Dihedral angles and the sides of a bond in a molecular graph, shared by peptides and ligands.

Only numpy: angles of any number of frames at once, and the atoms a rotation about a bond moves.
"""

from __future__ import annotations

import numpy as np

__all__ = ["dihedral_angles", "moving_side"]


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
