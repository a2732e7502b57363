"""A small MLP score model for low-dimensional states, used to test training end to end."""

from __future__ import annotations

import math

import torch
from torch import nn

from digmat.core import Diffusion, dsm_loss


class ToyScoreMLP(nn.Module):
    """eps-prediction MLP on (x, sinusoidal features of t); periodic entries enter as cos/sin."""

    def __init__(self, dim: int, periods: list[float] | None = None, width: int = 128, time_features: int = 16):
        super().__init__()
        self.periods = periods or [0.0] * dim
        n_in = sum(2 if p > 0 else 1 for p in self.periods) + time_features
        self.register_buffer("freqs", torch.exp(torch.linspace(0, math.log(1000.0), time_features // 2)))
        self.net = nn.Sequential(nn.Linear(n_in, width), nn.SiLU(), nn.Linear(width, width), nn.SiLU(), nn.Linear(width, width), nn.SiLU(), nn.Linear(width, dim))

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        feats = []
        for j, p in enumerate(self.periods):
            if p > 0:
                ang = 2 * math.pi * x[:, j] / p
                feats += [torch.cos(ang), torch.sin(ang)]
            else:
                feats.append(x[:, j])
        tf = t[:, None] * self.freqs[None]
        return self.net(torch.cat([torch.stack(feats, 1), torch.sin(tf), torch.cos(tf)], 1))


def make_loss(diffusion: Diffusion):
    def loss_fn(model, batch, generator):
        return dsm_loss(diffusion, model, batch, parameterization="eps", generator=generator).loss

    return loss_fn


def collate(items, device):
    return torch.stack(items).to(device)


def score_fn_of(model: nn.Module, diffusion: Diffusion):
    model.eval()
    return lambda x, t: diffusion.eps_to_score(model(x.float(), t.float()).to(x.dtype), t)


class ToyLogDensityMLP(nn.Module):
    """Scalar log-density model l(x, t) for PIDP tests: an MLP on (x, harmonics of periodic
    entries gated off where the diffused marginal is uniform, time features) minus |x_euclid|^2/2."""

    def __init__(self, diffusion: Diffusion, width: int = 64, time_features: int = 8, harmonics: int = 4):
        super().__init__()
        self.diffusion = diffusion
        self.periods = diffusion.space.periods(torch.zeros(1, dtype=torch.float64)).reshape(-1).tolist()
        self.harmonics = harmonics
        n_in = sum(2 * harmonics if p > 0 else 1 for p in self.periods) + time_features
        self.register_buffer("freqs", torch.exp(torch.linspace(0, math.log(100.0), time_features // 2)))
        self.net = nn.Sequential(nn.Linear(n_in, width), nn.SiLU(), nn.Linear(width, width), nn.SiLU(), nn.Linear(width, width), nn.SiLU(), nn.Linear(width, 1))

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        gate = self.diffusion.uniform_gate(t, x)
        feats, prior = [], torch.zeros_like(t)
        for j, p in enumerate(self.periods):
            if p > 0:
                ang = 2 * math.pi * x[:, j] / p
                feats += [gate[:, j] * f(k * ang) for k in range(1, self.harmonics + 1) for f in (torch.cos, torch.sin)]
            else:
                feats.append(x[:, j])
                prior = prior - 0.5 * x[:, j] ** 2
        tf = t[:, None] * self.freqs[None]
        return self.net(torch.cat([torch.stack(feats, 1), torch.sin(tf), torch.cos(tf)], 1)).squeeze(-1) + prior


def tiny_adsorption_network():
    """The one-layer, 16-wide Graphormer of the untrained adsorption models used in I/O and smoke tests."""
    from digmat.nn import GraphormerConfig

    return GraphormerConfig(num_layers=1, embed_dim=16, num_heads=2, ffn_dim=32, num_rbf=8, cutoff=4.0, num_tags=4, num_conditions=1, scalar_out=0)
