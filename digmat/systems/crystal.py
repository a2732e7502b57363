"""Crystal (a periodic cell of N atoms) <-> diffusion state.

State of one crystal with N atoms: a vector of D = 3N + 6 entries.

==============  ==================================================================  ==========
entries         meaning                                                             topology
==============  ==================================================================  ==========
0 .. 3N - 1     fractional coordinates f_nk of atom n along lattice vector k         torus, L = 1
3N .. 3N + 5    lattice: (vec(S - (1/3) log(N v0) I) - m) / lattice_scale             Euclidean
==============  ==================================================================  ==========

Lattice. With L the (3, 3) matrix whose rows are the lattice vectors (Å) and G = L L^T its
metric, S = log sqrt(G) = (1/2) log G is a symmetric matrix (matrix logarithm) that depends
only on the lattice's shape and size, not on its orientation; any symmetric S is a valid
lattice (L = exp(S) is positive definite), so the Euclidean prior never produces an invalid
cell. tr S = log V, so subtracting (1/3) log(N v0) I (v0: volume per atom, Å^3) scales the
cell by (N v0)^(1/3): the lattice entries are intensive and O(1). vec(A) = (A11, A22, A33,
sqrt2 A12, sqrt2 A13, sqrt2 A23) is an isometry (Frobenius norm = Euclidean norm); m (6,) is
the training set's mean of that vector (Niggli order a <= b <= c makes the diagonal's mean
non-zero), so that the lattice entries have mean ~0 and RMS ~1.
States map back to the *symmetric gauge* L = exp(S) (rows = lattice vectors, det > 0); the
input's orientation is lost, everything else is kept exactly.

Fractional coordinates live on the unit torus. Their periodic noise scale is
c = length_scale / (N v0)^(1/3) for every entry, so the positional noise in Å follows the same
clock (noise-to-signal ratio) whatever the number of atoms and hence the cell size.

Canonical states. ``to_state`` first Niggli-reduces the cell (and makes the basis
right-handed), then picks, among the proper lattice automorphisms of the reduced cell
(unimodular M with entries in {-1, 0, 1}, det M = 1, M G M^T = G) and the N choices of the atom
at the origin, the one whose sorted fractional coordinates are lexicographically smallest.
Equivalent descriptions of one crystal — another basis of the same lattice, a permutation of
the atoms, a rigid translation or rotation, atoms moved by lattice vectors — therefore give the
same state (to round-off). Mirror images give different states (they are different crystals
unless achiral). Periodicity is read from ``atoms.pbc``/``atoms.cell`` only.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch
from ase import Atoms
from torch import Tensor

from digmat.core import Diffusion, NoiseSchedule, StateSpace

__all__ = ["CrystalStateConfig", "CrystalSystem", "canonical_cell", "lattice_entries", "lattice_to_vec", "symmetric_to_vec", "vec_to_lattice"]

_SQRT2 = math.sqrt(2.0)
_TRIU = ((0, 0), (1, 1), (2, 2), (0, 1), (0, 2), (1, 2))
_KEY_RESOLUTION = 1e-6  # fractional-coordinate grid used only to compare candidate orderings


@dataclass(frozen=True)
class CrystalStateConfig:
    """How crystals are expressed as states.

    Parameters
    ----------
    volume_per_atom
        v0, reference volume per atom (Å^3); the lattice is scaled by (N v0)^(1/3).
    lattice_scale
        Unit of the lattice entries (dimensionless, in units of log length).
    lattice_mean
        m, the mean lattice vector (6,) subtracted before scaling (log-length units).
    length_scale
        Positional noise unit, Å: fractional noise scale c = length_scale / (N v0)^(1/3).
    """

    volume_per_atom: float = 8.0
    lattice_scale: float = 0.25
    lattice_mean: tuple[float, ...] = (0.0,) * 6
    length_scale: float = 1.0

    def __post_init__(self) -> None:
        for name in ("volume_per_atom", "lattice_scale", "length_scale"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ValueError(f"CrystalStateConfig.{name} must be a positive number, got {value!r}")
        mean = tuple(float(v) for v in self.lattice_mean)
        if len(mean) != 6 or not all(math.isfinite(v) for v in mean):
            raise ValueError(f"lattice_mean must be 6 finite numbers, got {self.lattice_mean!r}")
        object.__setattr__(self, "lattice_mean", mean)

    @classmethod
    def fit(cls, structures: Sequence[Atoms], *, length_scale: float = 1.0) -> CrystalStateConfig:
        """v0 = geometric mean volume per atom, m = mean lattice vector, lattice_scale = RMS about m."""
        if len(structures) == 0:
            raise ValueError("need at least one structure to fit the state scales")
        cells = [canonical_cell(a)[0] for a in structures]
        logv = np.array([np.log(abs(np.linalg.det(c)) / len(a)) for c, a in zip(cells, structures)])
        v0 = float(np.exp(logv.mean()))
        vecs = np.stack([lattice_to_vec(c, len(a) * v0) for c, a in zip(cells, structures)])
        mean = vecs.mean(0)
        scale = float(np.sqrt(np.mean((vecs - mean) ** 2)))
        return cls(volume_per_atom=v0, lattice_scale=max(scale, 1e-3), lattice_mean=tuple(mean.tolist()), length_scale=length_scale)


# ---------------------------------------------------------------------------- lattice maps
def lattice_to_vec(cell: np.ndarray, reference_volume: float) -> np.ndarray:
    """vec(log sqrt(L L^T) - (1/3) log(V_ref) I), shape (6,) (not divided by lattice_scale)."""
    cell = np.asarray(cell, dtype=np.float64)
    w, v = np.linalg.eigh(cell @ cell.T)
    if w.min() <= 0:
        raise ValueError("the cell is singular")
    s = (v * (0.5 * np.log(w))) @ v.T - np.log(reference_volume) / 3.0 * np.eye(3)
    return np.array([s[i, j] * (1.0 if i == j else _SQRT2) for i, j in _TRIU])


def vec_to_lattice(vec: Tensor, reference_volume: Tensor | float) -> Tensor:
    """Symmetric-gauge cells exp(S) (..., 3, 3) from lattice vectors (..., 6); differentiable."""
    s = vec.new_zeros(*vec.shape[:-1], 3, 3)
    for k, (i, j) in enumerate(_TRIU):
        value = vec[..., k] if i == j else vec[..., k] / _SQRT2
        s[..., i, j] = value
        s[..., j, i] = value
    shift = torch.as_tensor(reference_volume, dtype=vec.dtype, device=vec.device).log() / 3.0
    s = s + shift[..., None, None] * torch.eye(3, dtype=vec.dtype, device=vec.device)
    return torch.linalg.matrix_exp(s)


def lattice_entries(cell: Tensor, num_atoms: Tensor, config: CrystalStateConfig) -> Tensor:
    """Lattice state entries (B, 6) of cells (B, 3, 3) with ``num_atoms`` (B,) atoms, any orientation.

    The torch twin of the lattice part of :meth:`CrystalSystem.to_state` for a given basis (no
    Niggli reduction); differentiable where the metric's eigenvalues are distinct.
    """
    w, v = torch.linalg.eigh(cell @ cell.transpose(-1, -2))
    log_p = (v * (0.5 * w.log())[..., None, :]) @ v.transpose(-1, -2)
    shift = (num_atoms.to(cell.dtype) * config.volume_per_atom).log() / 3.0
    log_p = log_p - shift[:, None, None] * torch.eye(3, dtype=cell.dtype, device=cell.device)
    mean = torch.as_tensor(config.lattice_mean, dtype=cell.dtype, device=cell.device)
    return (symmetric_to_vec(log_p) - mean) / config.lattice_scale


def symmetric_to_vec(mat: Tensor) -> Tensor:
    """vec of symmetric matrices (..., 3, 3) -> (..., 6) with sqrt2 on off-diagonal entries."""
    parts = [mat[..., i, j] * (1.0 if i == j else _SQRT2) for i, j in _TRIU]
    return torch.stack(parts, dim=-1)


# ---------------------------------------------------------------------------- canonical form
@lru_cache(maxsize=1)
def _proper_unimodular() -> np.ndarray:
    """All 3x3 matrices with entries in {-1, 0, 1} and determinant +1, shape (K, 3, 3)."""
    mats = np.array(list(itertools.product((-1, 0, 1), repeat=9)), dtype=np.float64).reshape(-1, 3, 3)
    det = np.rint(np.linalg.det(mats))
    return mats[det == 1]


def _check_crystal(atoms: Atoms) -> None:
    if not isinstance(atoms, Atoms):
        raise TypeError(f"expected ase.Atoms, got {type(atoms).__name__}")
    if len(atoms) == 0:
        raise ValueError("the structure has no atoms")
    if not np.asarray(atoms.pbc).all():
        raise ValueError(f"a crystal must be periodic along all three cell vectors, got pbc={atoms.pbc.tolist()}")
    cell = np.asarray(atoms.cell.array, dtype=np.float64)
    if not (np.isfinite(cell).all() and np.isfinite(atoms.positions).all()):
        raise ValueError("the cell or positions contain NaN or inf")
    if abs(np.linalg.det(cell)) < 1e-6:
        raise ValueError("the cell is singular (zero volume)")


def canonical_cell(atoms: Atoms, *, tol: float = 1e-4) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Canonical description of a crystal: Niggli-reduced right-handed basis, origin and order.

    Parameters
    ----------
    atoms
        3D-periodic structure (not modified).
    tol
        Relative tolerance on the metric for lattice automorphisms.

    Returns
    -------
    cell (3, 3) rows = lattice vectors in Å (Cartesian orientation of the input),
    fractional coordinates (N, 3) in [0, 1), atomic numbers (N,) — atoms sorted by
    (Z, fractional coordinates), the first atom of the lowest Z at the origin. The cell's
    metric is averaged over the lattice's proper automorphisms, so that it does not depend on
    which of them was chosen (a change below ``tol``).
    """
    from ase.build.niggli import niggli_reduce_cell

    _check_crystal(atoms)
    cell = np.asarray(atoms.cell.array, dtype=np.float64)
    # ase.build.niggli_reduce would rebuild the cell from its parameters (standard
    # orientation, always right-handed) and so mirror a left-handed input; keep the basis
    # change only: reduced basis = op^T L, same orientation and handedness as the input.
    _, op = niggli_reduce_cell(cell)
    basis = np.rint(op).T @ cell
    if np.linalg.det(basis) < 0:  # basis change -I: same lattice, right-handed
        basis = -basis
    frac = np.linalg.solve(basis.T, atoms.positions.T).T
    gram = basis @ basis.T
    ops = _proper_unimodular()
    dev = np.abs(np.einsum("kij,jl,kml->kim", ops, gram, ops) - gram).max(axis=(1, 2))
    autos = ops[dev <= tol * np.abs(gram).max()]
    gram_sym = np.einsum("kij,jl,kml->im", autos, gram, autos) / len(autos)
    numbers = np.asarray(atoms.numbers)
    order_z = np.argsort(numbers, kind="stable")
    numbers, frac = numbers[order_z], frac[order_z]
    origin_atoms = np.flatnonzero(numbers == numbers[0])
    best = None
    for m in autos:
        f_m = frac @ np.linalg.inv(m)  # r = f L = (f M^-1)(M L)
        for i in origin_atoms:
            g = np.mod(f_m - f_m[i], 1.0)
            g[g > 1.0 - 0.5 * _KEY_RESOLUTION] = 0.0
            q = np.rint(g / _KEY_RESOLUTION).astype(np.int64)
            order = np.lexsort((q[:, 2], q[:, 1], q[:, 0], numbers))
            key = tuple(q[order].ravel())
            if best is None or key < best[0]:
                best = (key, m, g[order])
    assert best is not None
    w, v = np.linalg.eigh(gram_sym)
    u_left, _, u_right = np.linalg.svd(best[1] @ basis)  # orientation of the chosen basis
    return (v * np.sqrt(w)) @ v.T @ u_left @ u_right, best[2], numbers


# ---------------------------------------------------------------------------- the system
class CrystalSystem:
    """Crystals of a fixed composition (N atoms) and the map between their Atoms and states.

    Parameters
    ----------
    numbers
        Atomic numbers of the N atoms (any order; stored sorted), e.g. ``[6] * 12``.
    config
        :class:`CrystalStateConfig`.
    """

    def __init__(self, numbers: Sequence[int], config: CrystalStateConfig = CrystalStateConfig()):
        numbers = np.sort(np.asarray(numbers, dtype=np.int64))
        if numbers.ndim != 1 or len(numbers) == 0:
            raise ValueError("a crystal needs at least one atom")
        if numbers.min() < 1 or numbers.max() > 118:
            raise ValueError(f"atomic numbers must lie in 1..118, got {numbers.tolist()}")
        self.numbers = numbers
        self.config = config
        self.num_atoms = len(numbers)
        self.reference_volume = self.num_atoms * config.volume_per_atom
        self.reference_length = self.reference_volume ** (1.0 / 3.0)
        n3 = 3 * self.num_atoms
        self.dim = n3 + 6
        period = torch.zeros(self.dim, dtype=torch.float64)
        period[:n3] = 1.0
        scale = torch.ones(self.dim, dtype=torch.float64)
        scale[:n3] = config.length_scale / self.reference_length
        self.space = StateSpace((self.dim,), period=period, noise_scale=scale)

    @classmethod
    def for_atoms(cls, atoms: Atoms, config: CrystalStateConfig = CrystalStateConfig()) -> CrystalSystem:
        """The system of ``atoms``' composition."""
        return cls(atoms.numbers, config)

    def __repr__(self) -> str:
        from ase.data import chemical_symbols
        from ase.formula import Formula

        formula = Formula.from_list([chemical_symbols[z] for z in self.numbers]).format("hill")
        return f"CrystalSystem({formula}, state dim {self.dim})"

    @property
    def composition_key(self) -> tuple[int, ...]:
        """Sorted atomic numbers (hashable), e.g. to group structures."""
        return tuple(int(z) for z in self.numbers)

    def conditioning(self) -> dict:
        """The descriptor a score model is conditioned on: the composition."""
        from ase.data import chemical_symbols

        return {"kind": "crystal", "composition": [chemical_symbols[z] for z in self.numbers.tolist()],
                "num_atoms": int(self.num_atoms)}

    def diffusion(self, schedule: NoiseSchedule = NoiseSchedule()) -> Diffusion:
        """The forward process on this system's state space."""
        return Diffusion(self.space, schedule)

    # ------------------------------------------------------------------ states -> structures
    def split(self, states: Tensor) -> tuple[Tensor, Tensor]:
        """Fractional coordinates (B, N, 3) and lattice entries (B, 6) of states (B, D)."""
        self.space.check(states, "states")
        n3 = 3 * self.num_atoms
        return states[:, :n3].reshape(states.shape[0], self.num_atoms, 3), states[:, n3:]

    def structure(self, states: Tensor) -> tuple[Tensor, Tensor]:
        """Cartesian positions (B, N, 3) in Å and cells (B, 3, 3) (rows, symmetric gauge); differentiable."""
        frac, lat = self.split(states)
        mean = torch.as_tensor(self.config.lattice_mean, dtype=lat.dtype, device=lat.device)
        cell = vec_to_lattice(lat * self.config.lattice_scale + mean, self.reference_volume)
        return frac @ cell, cell

    def to_atoms(self, states: Tensor) -> list[Atoms]:
        """Crystals (pbc on all axes) for states (B, D)."""
        pos, cell = self.structure(states.detach().double())
        return [Atoms(numbers=self.numbers, positions=p, cell=c, pbc=True) for p, c in zip(pos.cpu().numpy(), cell.cpu().numpy())]

    # ------------------------------------------------------------------ structures -> states
    def to_state(self, structures: Atoms | Sequence[Atoms], *, dtype: torch.dtype = torch.float64) -> Tensor:
        """Canonical states (B, D) of crystals with this system's composition (see module docstring)."""
        if isinstance(structures, Atoms):
            structures = [structures]
        rows = [self._state_of(a) for a in structures]
        return torch.tensor(np.stack(rows), dtype=dtype)

    def _state_of(self, atoms: Atoms) -> np.ndarray:
        _check_crystal(atoms)
        if not np.array_equal(np.sort(atoms.numbers), self.numbers):
            raise ValueError(f"the structure's composition {atoms.get_chemical_formula()} does not match {self!r}")
        cell, frac, _ = canonical_cell(atoms)
        lat = (lattice_to_vec(cell, self.reference_volume) - np.asarray(self.config.lattice_mean)) / self.config.lattice_scale
        return np.concatenate([frac.ravel(), lat])
