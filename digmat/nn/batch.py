"""Batches of atomic systems as concatenated tensors (PyG style)."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from ase import Atoms

MAX_Z = 100


def _periodic_rank_ok(cell: torch.Tensor, pbc: torch.Tensor) -> torch.Tensor:
    """Per system: do the lattice vectors of the periodic axes span a non-degenerate lattice?

    Uses the Gram determinant of the normalised periodic vectors (non-periodic
    rows replaced by the identity), so the check is scale free.

    Parameters
    ----------
    cell
        ``(B, 3, 3)`` lattice vectors as rows, Å.
    pbc
        ``(B, 3)`` bool.

    Returns
    -------
    torch.Tensor
        ``(B,)`` bool.
    """
    vecs = cell.double() * pbc[..., None]
    lengths = vecs.norm(dim=2)
    degenerate = (pbc & (lengths < 1e-8)).any(dim=1)
    unit = vecs / torch.where(lengths > 0, lengths, torch.ones_like(lengths))[..., None]
    gram = unit @ unit.transpose(1, 2) + torch.diag_embed((~pbc).double())
    return ~degenerate & (torch.linalg.det(gram) > 1e-10)


@dataclass(frozen=True)
class AtomsBatch:
    """Several atomic systems concatenated along the atom axis.

    ``N`` is the total number of atoms and ``B`` the number of systems.

    Attributes
    ----------
    positions
        ``(N, 3)`` Cartesian positions in Å (float32 or float64). Need not be
        wrapped into the cell.
    numbers
        ``(N,)`` long, atomic numbers in ``1..100``.
    tags
        ``(N,)`` long, atom roles (OC20: 0 subsurface, 1 surface, 2 adsorbate).
    cell
        ``(B, 3, 3)`` lattice vectors as rows, Å. Rows of non-periodic axes are
        ignored (they may be zero, e.g. for molecules).
    pbc
        ``(B, 3)`` bool periodic flags per lattice vector.
    batch
        ``(N,)`` long system index of each atom, non-decreasing.
    natoms
        ``(B,)`` long number of atoms per system.
    """

    positions: torch.Tensor
    numbers: torch.Tensor
    tags: torch.Tensor
    cell: torch.Tensor
    pbc: torch.Tensor
    batch: torch.Tensor
    natoms: torch.Tensor

    def __post_init__(self) -> None:
        n = self.positions.shape[0]
        if self.positions.ndim != 2 or self.positions.shape[1] != 3:
            raise ValueError(f"positions must have shape (N, 3), got {tuple(self.positions.shape)}")
        if not self.positions.is_floating_point():
            raise ValueError("positions must be a floating-point tensor")
        for name in ("numbers", "tags", "batch"):
            t = getattr(self, name)
            if t.shape != (n,):
                raise ValueError(f"{name} must have shape ({n},), got {tuple(t.shape)}")
        for name in ("numbers", "tags", "batch", "natoms"):
            if getattr(self, name).dtype != torch.long:
                raise ValueError(f"{name} must be a torch.long tensor, got {getattr(self, name).dtype}")
        b = self.natoms.shape[0]
        if self.cell.shape != (b, 3, 3):
            raise ValueError(f"cell must have shape ({b}, 3, 3), got {tuple(self.cell.shape)}")
        if self.pbc.shape != (b, 3) or self.pbc.dtype != torch.bool:
            raise ValueError(f"pbc must be a bool tensor of shape ({b}, 3)")
        if int(self.natoms.sum()) != n:
            raise ValueError(f"natoms sums to {int(self.natoms.sum())} but there are {n} atoms")
        if not bool(torch.isfinite(self.positions).all()):
            bad = torch.nonzero(~torch.isfinite(self.positions).all(dim=1)).flatten().tolist()
            raise ValueError(f"positions contain NaN/inf (atoms {bad[:10]})")

    # ------------------------------------------------------------------ build
    @classmethod
    def from_atoms(
        cls,
        atoms_list: Atoms | Sequence[Atoms],
        *,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str | None = None,
        tags: Sequence[Sequence[int] | np.ndarray] | None = None,
    ) -> AtomsBatch:
        """Concatenate ASE structures into one batch. The inputs are not modified.

        Parameters
        ----------
        atoms_list
            One ``ase.Atoms`` or a sequence of them (different sizes and cells allowed).
        dtype
            Floating dtype of positions and cells.
        device
            Target device (default CPU).
        tags
            Optional per-system tag arrays overriding ``atoms.get_tags()``.

        Raises
        ------
        ValueError
            On empty input, non-finite positions, atomic numbers outside 1..100,
            negative tags, or a singular cell along a periodic axis.
        """
        if isinstance(atoms_list, Atoms):
            atoms_list = [atoms_list]
        atoms_list = list(atoms_list)
        if not atoms_list:
            raise ValueError("from_atoms needs at least one ase.Atoms")
        if not dtype.is_floating_point:
            raise ValueError(f"dtype must be floating point, got {dtype}")
        if tags is not None and len(tags) != len(atoms_list):
            raise ValueError(f"got {len(tags)} tag arrays for {len(atoms_list)} systems")
        pos, num, tag, cells, pbcs, counts = [], [], [], [], [], []
        for k, atoms in enumerate(atoms_list):
            if not isinstance(atoms, Atoms):
                raise ValueError(f"system {k} is {type(atoms).__name__}, expected ase.Atoms")
            n = len(atoms)
            if n == 0:
                raise ValueError(f"system {k} has no atoms")
            z = np.asarray(atoms.numbers)
            if z.min() < 1 or z.max() > MAX_Z:
                raise ValueError(
                    f"system {k}: atomic numbers must be in 1..{MAX_Z}, got {sorted(set(z.tolist()))}")
            p = np.asarray(atoms.positions, dtype=np.float64)
            if not np.isfinite(p).all():
                raise ValueError(f"system {k}: positions contain NaN/inf")
            t = np.asarray(atoms.get_tags() if tags is None else tags[k])
            if t.shape != (n,):
                raise ValueError(f"system {k}: tags must have shape ({n},), got {t.shape}")
            if t.size and (not np.issubdtype(t.dtype, np.integer) or t.min() < 0):
                raise ValueError(f"system {k}: tags must be non-negative integers")
            pos.append(p)
            num.append(z)
            tag.append(t)
            cells.append(np.asarray(atoms.cell.array, dtype=np.float64))
            pbcs.append(np.asarray(atoms.pbc, dtype=bool))
            counts.append(n)
        cell = torch.tensor(np.stack(cells), dtype=dtype, device=device)
        pbc = torch.tensor(np.stack(pbcs), dtype=torch.bool, device=device)
        bad = torch.nonzero(~_periodic_rank_ok(cell, pbc)).flatten().tolist()
        if bad:
            raise ValueError(
                f"systems {bad}: the cell is singular along the periodic axes "
                "(zero or linearly dependent lattice vectors where pbc is True)")
        natoms = torch.tensor(counts, dtype=torch.long, device=device)
        return cls(
            positions=torch.tensor(np.concatenate(pos), dtype=dtype, device=device),
            numbers=torch.tensor(np.concatenate(num), dtype=torch.long, device=device),
            tags=torch.tensor(np.concatenate(tag), dtype=torch.long, device=device),
            cell=cell,
            pbc=pbc,
            batch=torch.repeat_interleave(torch.arange(len(counts), device=device), natoms),
            natoms=natoms,
        )

    @classmethod
    def concat(cls, batches: Sequence[AtomsBatch]) -> AtomsBatch:
        """Join batches (same dtype and device) into one; system indices are renumbered."""
        batches = list(batches)
        if not batches:
            raise ValueError("concat needs at least one AtomsBatch")
        if len(batches) == 1:
            return batches[0]
        offsets, total = [], 0
        for bt in batches:
            offsets.append(total)
            total += bt.num_systems
        return cls(
            positions=torch.cat([bt.positions for bt in batches]),
            numbers=torch.cat([bt.numbers for bt in batches]),
            tags=torch.cat([bt.tags for bt in batches]),
            cell=torch.cat([bt.cell for bt in batches]),
            pbc=torch.cat([bt.pbc for bt in batches]),
            batch=torch.cat([bt.batch + off for bt, off in zip(batches, offsets)]),
            natoms=torch.cat([bt.natoms for bt in batches]),
        )

    # ------------------------------------------------------------ properties
    @property
    def num_systems(self) -> int:
        """Number of systems ``B``."""
        return int(self.natoms.shape[0])

    @property
    def num_atoms(self) -> int:
        """Total number of atoms ``N``."""
        return int(self.positions.shape[0])

    @property
    def ptr(self) -> torch.Tensor:
        """``(B + 1,)`` offsets: atoms of system ``b`` are ``ptr[b]:ptr[b+1]``."""
        zero = torch.zeros(1, dtype=torch.long, device=self.natoms.device)
        return torch.cat([zero, torch.cumsum(self.natoms, 0)])

    @property
    def dtype(self) -> torch.dtype:
        return self.positions.dtype

    @property
    def device(self) -> torch.device:
        return self.positions.device

    # ------------------------------------------------------------- transform
    def to(self, device: torch.device | str | None = None,
           dtype: torch.dtype | None = None) -> AtomsBatch:
        """Return a copy on ``device`` with floating tensors cast to ``dtype``."""
        def move(t: torch.Tensor) -> torch.Tensor:
            if dtype is not None and t.is_floating_point():
                t = t.to(dtype=dtype)
            return t.to(device=device) if device is not None else t
        return dataclasses.replace(
            self, **{f.name: move(getattr(self, f.name)) for f in dataclasses.fields(self)})

    def with_positions(self, positions: torch.Tensor) -> AtomsBatch:
        """Same systems (numbers, tags, cells, pbc) with new ``(N, 3)`` positions in Å.

        The tensor is used as is (no copy), so gradients flow back to it.
        """
        if positions.shape != self.positions.shape:
            raise ValueError(
                f"positions must have shape {tuple(self.positions.shape)}, got {tuple(positions.shape)}")
        return dataclasses.replace(self, positions=positions)

    def with_cell(self, cell: torch.Tensor) -> AtomsBatch:
        """Same atoms with new ``(B, 3, 3)`` lattice vectors (rows, Å)."""
        return dataclasses.replace(self, cell=cell)

    def to_atoms(self) -> list[Atoms]:
        """Convert back to a list of new ``ase.Atoms`` (positions, numbers, tags, cell, pbc)."""
        pos = self.positions.detach().cpu().double().numpy()
        out = []
        ptr = self.ptr.tolist()
        for b in range(self.num_systems):
            sl = slice(ptr[b], ptr[b + 1])
            out.append(Atoms(
                numbers=self.numbers[sl].cpu().numpy(),
                positions=pos[sl],
                tags=self.tags[sl].cpu().numpy(),
                cell=self.cell[b].detach().cpu().double().numpy(),
                pbc=self.pbc[b].cpu().numpy(),
            ))
        return out
