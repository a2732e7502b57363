"""An invariant log-density network for systems of identical particles (PIDP on DW-4, LJ-13).

For a state y (B, n*dim) of n particles in ``dim`` dimensions and a diffusion time t,

    l(y, t) = -|y|^2 / 2 + sum_{i<j} phi(d_ij, t) + sum_i psi(sum_{j != i} rho(d_ij, t), t),

with d_ij = |y_i - y_j| and phi, rho, psi small SiLU MLPs (smooth: PIDP differentiates l three
times). The learned part depends on distances only, so l is invariant under permutations,
rotations, reflections and translations of the *relative* coordinates; the explicit
``-|y|^2 / 2 = -|y - c|^2 / 2 - n |c|^2 / 2`` is the VP prior N(0, I):

* its centre-of-mass part ``-n |c|^2 / 2`` is exactly the COM factor of the training target of
  :mod:`digmat.boltzmann` (c ~ N(0, 1/n), stationary under the forward process), so the COM is
  right at every t without learning;
* its relative part is the t = 1 limit, so the learned terms only need to vanish there (the
  output layers start at zero: an untrained network is the prior).

``phi`` carries pair energies (DW-4's is pair-additive at t = 0); the per-particle density
``sum_j rho`` and ``psi`` add many-body terms, which the noised marginals p_t need at t > 0.
Distances enter through Gaussian radial features on [0, cutoff] plus powers (d / cutoff)^k (so
the functions extrapolate beyond the cutoff instead of flattening), times through sinusoidal
features with angular frequencies log-spaced in [1, 30] (smooth enough in t for the
Fokker–Planck residual's dl/dt).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

__all__ = ["PairNet", "PairNetConfig"]


@dataclass(frozen=True)
class PairNetConfig:
    """Hyper-parameters of :class:`PairNet` (plain data, stored in checkpoints).

    Parameters
    ----------
    n_particles, dim
        Particles per system and spatial dimensions: states have n_particles * dim entries.
    width
        Hidden width of the pair and particle MLPs.
    layers
        Hidden layers of each MLP (>= 1).
    num_rbf
        Gaussian radial features of a distance, centres evenly spaced on [0, cutoff].
    cutoff
        Range of the radial features, state units (beyond it only d / cutoff varies).
    time_features
        Sinusoidal features of t (even).
    density_width
        Width of the per-particle density sum_j rho(d_ij, t); 0 leaves out the many-body term.
    powers
        Positive powers k of (d / cutoff)^k given to the pair MLPs beside the radial features: how
        the learned functions may grow beyond the cutoff (SiLU is asymptotically linear, so
        power k lets phi grow like d^k there; e.g. (1, 2, 4) for a quartic pair energy).
    """

    n_particles: int = 4
    dim: int = 2
    width: int = 64
    layers: int = 2
    num_rbf: int = 16
    cutoff: float = 6.0
    time_features: int = 8
    density_width: int = 16
    powers: tuple[int, ...] = (1,)

    def __post_init__(self) -> None:
        for name in ("n_particles", "dim", "width", "layers", "num_rbf", "time_features"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"PairNetConfig.{name} must be a positive integer, got {value!r}")
        if self.n_particles < 2:
            raise ValueError(f"PairNetConfig.n_particles must be >= 2, got {self.n_particles}")
        if self.num_rbf < 2:
            raise ValueError(f"PairNetConfig.num_rbf must be >= 2, got {self.num_rbf}")
        if self.time_features % 2:
            raise ValueError(f"PairNetConfig.time_features must be even, got {self.time_features}")
        if isinstance(self.density_width, bool) or not isinstance(self.density_width, int) or self.density_width < 0:
            raise ValueError(f"PairNetConfig.density_width must be an integer >= 0, got {self.density_width!r}")
        if not self.powers or any(isinstance(k, bool) or not isinstance(k, int) or k < 1 for k in self.powers):
            raise ValueError(f"PairNetConfig.powers must be a non-empty tuple of positive integers, got {self.powers!r}")
        object.__setattr__(self, "powers", tuple(self.powers))
        if not (isinstance(self.cutoff, (int, float)) and math.isfinite(self.cutoff) and self.cutoff > 0):
            raise ValueError(f"PairNetConfig.cutoff must be a positive number, got {self.cutoff!r}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PairNetConfig:
        return cls(**data)


def _mlp(n_in: int, width: int, layers: int, n_out: int) -> nn.Sequential:
    """SiLU MLP with ``layers`` hidden layers and a zero-initialised output layer."""
    mods: list[nn.Module] = []
    for k in range(layers):
        mods += [nn.Linear(n_in if k == 0 else width, width), nn.SiLU()]
    out = nn.Linear(width, n_out)
    nn.init.zeros_(out.weight)
    nn.init.zeros_(out.bias)
    return nn.Sequential(*mods, out)


class PairNet(nn.Module):
    """Invariant log-density ``l(y, t)`` of particle states (see the module docstring).

    Parameters
    ----------
    config
        Hyper-parameters.
    """

    def __init__(self, config: PairNetConfig = PairNetConfig()):
        super().__init__()
        self.config = config
        c = config
        i, j = torch.triu_indices(c.n_particles, c.n_particles, 1)
        self.register_buffer("pair_i", i, persistent=False)
        self.register_buffer("pair_j", j, persistent=False)
        self.register_buffer("centers", torch.linspace(0.0, c.cutoff, c.num_rbf))
        self.register_buffer("freqs", torch.exp(torch.linspace(0.0, math.log(30.0), c.time_features // 2)))
        self.register_buffer("growth_powers", torch.tensor(c.powers, dtype=torch.float32), persistent=False)
        n_pair_in = c.num_rbf + len(c.powers) + c.time_features
        self.phi = _mlp(n_pair_in, c.width, c.layers, 1)
        if c.density_width:
            self.rho = _mlp(n_pair_in, c.width, c.layers, c.density_width)
            nn.init.normal_(self.rho[-1].weight, std=0.1)   # rho feeds psi: start non-zero, psi's output is zero
            self.psi = _mlp(c.density_width + c.time_features, c.width, c.layers, 1)

    def time_embedding(self, t: Tensor) -> Tensor:
        """(B,) times -> (B, time_features) sinusoidal features."""
        angles = t[:, None] * self.freqs.to(t)
        return torch.cat([angles.sin(), angles.cos()], dim=-1)

    def distances(self, y: Tensor) -> Tensor:
        """(B, n*dim) states -> (B, n(n-1)/2) distances d_ij, i < j (smooth at 0: sqrt(|.|^2 + 1e-12))."""
        p = y.reshape(y.shape[0], self.config.n_particles, self.config.dim)
        return ((p[:, self.pair_i] - p[:, self.pair_j]) ** 2).sum(-1).add(1e-12).sqrt()

    def forward(self, y: Tensor, t: Tensor) -> Tensor:
        """Log-density up to a constant.

        Parameters
        ----------
        y
            (B, n*dim) states (state units).
        t
            (B,) diffusion times in [0, 1].

        Returns
        -------
        (B,) values of l(y, t).
        """
        c = self.config
        if y.ndim != 2 or y.shape[1] != c.n_particles * c.dim:
            raise ValueError(f"y must have shape (B, {c.n_particles * c.dim}), got {tuple(y.shape)}")
        d = self.distances(y)                                            # (B, P)
        width = c.cutoff / (c.num_rbf - 1)
        rbf = torch.exp(-0.5 * ((d[..., None] - self.centers.to(d)) / width) ** 2)
        temb = self.time_embedding(t)                                    # (B, T)
        npair = d.shape[1]
        growth = (d / c.cutoff)[..., None] ** self.growth_powers.to(d)
        feats = torch.cat([rbf, growth, temb[:, None, :].expand(-1, npair, -1)], dim=-1)
        out = self.phi(feats).squeeze(-1).sum(-1)
        if c.density_width:
            rho = self.rho(feats)                                        # (B, P, W)
            dens = rho.new_zeros(y.shape[0], c.n_particles, c.density_width)
            dens = dens.index_add(1, self.pair_i, rho).index_add(1, self.pair_j, rho)
            node_in = torch.cat([dens, temb[:, None, :].expand(-1, c.n_particles, -1)], dim=-1)
            out = out + self.psi(node_in).squeeze(-1).sum(-1)
        return out - 0.5 * (y**2).sum(-1)
