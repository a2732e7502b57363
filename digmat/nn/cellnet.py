"""A fully connected cell-level network for small crystals (DiffCSP-style pairwise features).

Every atom exchanges messages with every atom of its cell (and, through the pair features,
with all their lattice images), so no neighbour list and no cutoff limit what it sees. A pair
(i, j) is described by

* Fourier features of the fractional difference f_j - f_i: ``sin(2 pi k d), cos(2 pi k d)``
  for k = 1..K per lattice direction — periodic, so lattice translations of single atoms
  change nothing;
* the periodic pair density ``sum_n phi(|(f_j - f_i + n) L|)`` over the 27 nearest lattice
  shifts n, phi a Gaussian radial basis with a smooth cutoff — Cartesian distances to every
  image within ``cutoff`` Å, which the Fourier features alone resolve only to ~1/K of a cell;
* the cell's shape (the state's six lattice entries, invariant under rotations).

Node features start from the element and the diffusion time; each layer adds to every node
the mean of MLP(h_i, h_j, pair_ij) over j. Outputs, per atom, a fractional-coordinate vector as
the sum of a direct linear readout and a geometric term ``sum_{j,n} c_ijn (f_j - f_i + n) V^(1/3)
/ |r_ijn|`` (r_ijn the Cartesian image vector, c_ijn an invariant coefficient, V the cell
volume), which points
along bonds and so resolves bond lengths at low noise; per cell, six lattice numbers from the
mean node feature.

All inputs are invariant under rotations of the crystal and permutations of equal atoms
(outputs permute with the atoms). The network is *not* invariant under a change of lattice
basis: it is meant for canonical states (Niggli-reduced cells, see
:mod:`digmat.systems.crystal`).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from digmat.nn.encoder import SinusoidalTimeEmbedding
from digmat.nn.radial import smooth_cutoff

__all__ = ["CellNet", "CellNetConfig"]

_SHIFTS = torch.tensor([[a, b, c] for a in (-1, 0, 1) for b in (-1, 0, 1) for c in (-1, 0, 1)], dtype=torch.float64)


@dataclass(frozen=True)
class CellNetConfig:
    """Hyper-parameters of :class:`CellNet` (plain data, stored in checkpoints).

    Parameters
    ----------
    num_layers
        Message-passing layers.
    hidden
        Width of node and message features.
    num_freqs
        K, Fourier frequencies per lattice direction of the fractional differences.
    num_rbf
        Gaussian radial functions of the periodic pair density on [0, cutoff].
    cutoff
        Å, range of the pair density and of the geometric output term.
    time_embed_dim
        Sinusoidal features of the diffusion time.
    max_z
        Largest atomic number accepted.
    """

    num_layers: int = 4
    hidden: int = 128
    num_freqs: int = 10
    num_rbf: int = 32
    cutoff: float = 6.0
    time_embed_dim: int = 64
    max_z: int = 100

    def __post_init__(self) -> None:
        for name in ("num_layers", "hidden", "num_freqs", "num_rbf", "time_embed_dim", "max_z"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"CellNetConfig.{name} must be a positive integer, got {value!r}")
        if self.time_embed_dim % 2:
            raise ValueError(f"time_embed_dim must be even, got {self.time_embed_dim}")
        if not (isinstance(self.cutoff, (int, float)) and math.isfinite(self.cutoff) and self.cutoff > 0):
            raise ValueError(f"cutoff must be a positive number (Å), got {self.cutoff!r}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CellNetConfig:
        return cls(**data)

    @property
    def pair_dim(self) -> int:
        """Width of the raw pair features: 6K Fourier + radial + 6 lattice entries."""
        return 6 * self.num_freqs + self.num_rbf + 6


class _Layer(nn.Module):
    """h_i <- h_i + MLP(h_i, mean_j MLP(h_i, h_j, pair_ij)), with the pair MLP's first layer split
    into node and pair parts so that the N^2 work is only on the pair features."""

    def __init__(self, hidden: int, pair_dim: int):
        super().__init__()
        self.receiver = nn.Linear(hidden, hidden)
        self.sender = nn.Linear(hidden, hidden, bias=False)
        self.pair = nn.Linear(pair_dim, hidden, bias=False)
        self.message = nn.Sequential(nn.SiLU(), nn.Linear(hidden, hidden), nn.SiLU())
        self.update = nn.Sequential(nn.Linear(2 * hidden, hidden), nn.SiLU(), nn.Linear(hidden, hidden))
        self.norm = nn.LayerNorm(hidden)

    def forward(self, h: Tensor, pair: Tensor) -> tuple[Tensor, Tensor]:
        # h (B, N, H); pair (B, N, N, P)
        m = self.message(self.receiver(h)[:, :, None] + self.sender(h)[:, None, :] + self.pair(pair))
        agg = m.mean(dim=2)
        return self.norm(h + self.update(torch.cat([h, agg], dim=-1))), m


class CellNet(nn.Module):
    """Noise prediction for batches of crystals of one size, from their fractional coordinates,
    cells and lattice state entries (see the module docstring).

    Parameters
    ----------
    config
        Hyper-parameters.
    """

    def __init__(self, config: CellNetConfig = CellNetConfig()):
        super().__init__()
        self.config = config
        h = config.hidden
        self.element = nn.Embedding(config.max_z + 1, h)
        self.time = SinusoidalTimeEmbedding(config.time_embed_dim, h)
        self.register_buffer("freqs", 2 * math.pi * torch.arange(1, config.num_freqs + 1, dtype=torch.float32))
        self.register_buffer("centers", torch.linspace(0.0, config.cutoff, config.num_rbf))
        self.layers = nn.ModuleList(_Layer(h, config.pair_dim) for _ in range(config.num_layers))
        self.frac_out = nn.Linear(h, 3)
        self.bond = nn.Linear(h, config.num_rbf)
        self.lattice_out = nn.Sequential(nn.Linear(h, h), nn.SiLU(), nn.Linear(h, 6))

    def _radial(self, d: Tensor) -> Tensor:
        """Gaussian basis (..., R) times the smooth cutoff of distances d (...)."""
        width = self.config.cutoff / self.config.num_rbf
        # exponent capped at 60: exp() of far images would otherwise underflow into subnormal
        # floats, which are ~20x slower to compute (and contribute nothing: e^-60 ~ 1e-26)
        g = torch.exp(-(0.5 * ((d[..., None] - self.centers.to(d)) / width) ** 2).clamp(max=60.0))
        return g * smooth_cutoff(d, self.config.cutoff)[..., None]

    def pair_geometry(self, frac: Tensor, cell: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Pair geometry of crystals (B, N, 3) fractional coordinates and (B, 3, 3) cells.

        Returns
        -------
        diff : (B, N, N, 3)
            f_j - f_i wrapped to [-1/2, 1/2).
        images : (B, N, N, 27, 3)
            diff + n for the 27 shifts n in {-1, 0, 1}^3 (fractional).
        dist : (B, N, N, 27)
            |images @ cell|, Å (1 where i = j and n = 0, whose radial features are zero).
        radial : (B, N, N, 27, R)
            Radial basis with the smooth cutoff; zero for an atom's own n = 0 image.
        """
        diff = frac[:, None, :, :] - frac[:, :, None, :]
        diff = diff - torch.round(diff)
        images = diff[:, :, :, None, :] + _SHIFTS.to(frac)
        dist = torch.einsum("bijsk,bkl->bijsl", images, cell).norm(dim=-1)
        self_image = dist < 1e-6
        dist = torch.where(self_image, torch.ones_like(dist), dist)
        radial = self._radial(dist) * (~self_image)[..., None].to(frac)
        return diff, images, dist, radial

    def forward(self, numbers: Tensor, frac: Tensor, cell: Tensor, lattice: Tensor, t: Tensor) -> tuple[Tensor, Tensor]:
        """Noise predictions.

        Parameters
        ----------
        numbers
            (N,) atomic numbers (the same composition for the whole batch).
        frac
            (B, N, 3) fractional coordinates.
        cell
            (B, 3, 3) cells (rows = lattice vectors, Å).
        lattice
            (B, 6) the states' lattice entries.
        t
            (B,) diffusion times.

        Returns
        -------
        frac_out : (B, N, 3)
            Per-atom fractional-coordinate output.
        lattice_out : (B, 6)
            Per-cell lattice output.
        """
        b, n, _ = frac.shape
        diff, images, dist, radial = self.pair_geometry(frac, cell)
        angles = diff[..., None] * self.freqs.to(frac)  # (B, N, N, 3, K)
        fourier = torch.cat([angles.sin(), angles.cos()], dim=-1).flatten(-2)
        density = radial.sum(dim=3)
        pair = torch.cat([fourier, density, lattice[:, None, None, :].expand(b, n, n, 6)], dim=-1)
        h = (self.element(numbers)[None] + self.time(t)[:, None, :]).expand(b, n, -1)
        m = None
        for layer in self.layers:
            h, m = layer(h, pair)
        # geometric term: sum over j and images of c_ijn (f_j - f_i + n) |L|^(1/3) / |r_ijn|, with
        # c_ijn = sum_r a_ijr phi_r(|r_ijn|) (a_ij from the last messages; phi carries the cutoff)
        coeff = torch.einsum("bijr,bijsr->bijs", self.bond(m), radial)
        length = torch.linalg.det(cell).abs() ** (1.0 / 3.0)
        geometric = (coeff[..., None] * images / dist[..., None]).sum(dim=(2, 3)) * (length[:, None, None] / n)
        return self.frac_out(h) + geometric, self.lattice_out(h.mean(dim=1))
