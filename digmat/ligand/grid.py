"""Energy maps on a regular grid: precompute once per pocket, interpolate for every pose.

Scoring a ligand pose against thousands of receptor atoms costs O(ligand × receptor) pairs;
AutoDock and Vina instead tabulate, for each ligand atom type, the energy a probe atom of that
type would have at every point of a grid over the search box, and interpolate trilinearly.
:class:`GridMaps` does the same in torch, batched over poses and differentiable (the gradient
of the trilinear interpolant).  Outside the grid the energy is +``outside`` per atom (a wall),
so samplers cannot leave the box through the maps.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

__all__ = ["GridMaps"]

ProbeFn = Callable[[Tensor, int], Tensor]
"""Energy of a probe atom of a type at points (P, 3) Å → (P,) (e.g. kcal/mol)."""


@dataclass(frozen=True, eq=False)
class GridMaps:
    """Per-type energy maps on one regular grid.

    Attributes
    ----------
    origin : Tensor
        (3,) Å: the corner of the grid (point [0, 0, 0]).
    spacing : float
        Å between grid points.
    values : Tensor
        (T, nx, ny, nz): map of each type.
    types : tuple of int
        The type each map belongs to.
    outside : float
        Energy per atom outside the grid.
    """

    origin: Tensor
    spacing: float
    values: Tensor
    types: tuple[int, ...]
    outside: float = 1.0e3

    @classmethod
    def compute(cls, probe: ProbeFn, types, center, size, *, spacing: float = 0.375, chunk: int = 8192,
                outside: float = 1.0e3, dtype=torch.float64) -> GridMaps:
        """Tabulate ``probe`` for every type on a grid of ``size`` (3,) Å centred at ``center``.

        Parameters
        ----------
        probe : callable
            ``probe(points (P, 3), type) -> (P,)`` energies.
        types : iterable of int
            Types to tabulate.
        center, size : array_like
            (3,) Å each; the grid covers at least the box.
        spacing : float
            Å (Vina's default 0.375).
        chunk : int
            Points per probe call.
        """
        center = np.asarray(center, float)
        size = np.asarray(size, float)
        if center.shape != (3,) or size.shape != (3,) or not (size > 0).all() or not spacing > 0:
            raise ValueError("grid centre and size must be (3,) Å with positive size and spacing")
        counts = np.ceil(size / spacing).astype(int) + 1
        origin = center - (counts - 1) * spacing / 2
        axes = [origin[d] + spacing * np.arange(counts[d]) for d in range(3)]
        points = torch.as_tensor(np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 3), dtype=dtype)
        types = tuple(int(t) for t in types)
        maps = torch.empty(len(types), len(points), dtype=dtype)
        with torch.no_grad():
            for k, t in enumerate(types):
                for start in range(0, len(points), chunk):
                    maps[k, start:start + chunk] = probe(points[start:start + chunk], t)
        return cls(origin=torch.as_tensor(origin, dtype=dtype), spacing=float(spacing),
                   values=maps.reshape(len(types), *counts.tolist()), types=types, outside=float(outside))

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.values.shape[1:])

    def energy(self, positions: Tensor, atom_types, *, per_atom: bool = False) -> Tensor:
        """Sum over atoms of the interpolated map of each atom's type.

        Parameters
        ----------
        positions : Tensor
            (B, n, 3) Å (differentiable).
        atom_types : array_like of int
            (n,) the type of each atom (must be among :attr:`types`).
        per_atom : bool
            Return each atom's value, (B, n), instead of the sum.

        Returns
        -------
        Tensor
            (B,) energies; each atom outside the grid adds :attr:`outside`.
        """
        index = {t: k for k, t in enumerate(self.types)}
        try:
            rows = torch.as_tensor([index[int(t)] for t in np.asarray(atom_types).ravel()], device=positions.device)
        except KeyError as err:
            raise ValueError(f"no map for atom type {err.args[0]}") from None
        values = self.values.to(positions.device, positions.dtype)
        u = (positions - self.origin.to(positions)) / self.spacing  # (B, n, 3) grid units
        size = torch.as_tensor(self.shape, device=positions.device, dtype=positions.dtype)
        inside = ((u >= 0) & (u <= size - 1)).all(-1)
        u = torch.minimum(u.clamp(min=0.0), size - 1 - 1e-9)
        base = u.floor()
        f = u - base
        i0 = base.long()
        total = torch.zeros(positions.shape[:2], dtype=positions.dtype, device=positions.device)
        r = rows.expand(positions.shape[0], -1)
        for dx in (0, 1):
            wx = f[..., 0] if dx else 1 - f[..., 0]
            for dy in (0, 1):
                wy = f[..., 1] if dy else 1 - f[..., 1]
                for dz in (0, 1):
                    wz = f[..., 2] if dz else 1 - f[..., 2]
                    corner = values[r, i0[..., 0] + dx, i0[..., 1] + dy, i0[..., 2] + dz]
                    total = total + wx * wy * wz * corner
        total = torch.where(inside, total, torch.full_like(total, self.outside))
        return total if per_atom else total.sum(-1)
