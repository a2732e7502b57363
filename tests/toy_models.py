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
