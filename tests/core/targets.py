"""Analytic test targets shared by the core tests: a Euclidean, a torus and a mixed mixture."""

from __future__ import annotations

import torch

from digmat.core import Diffusion, NoiseSchedule, ProductMixture, StateSpace

WEIGHTS = [0.5, 0.3, 0.2]


def euclidean_mixture(schedule: NoiseSchedule = NoiseSchedule()) -> ProductMixture:
    """Three anisotropic Gaussians in 2-D."""
    d = Diffusion(StateSpace.euclidean(2), schedule)
    means = [[-2.0, 0.0], [2.0, 0.5], [0.0, 2.0]]
    stds = [[0.4, 0.6], [0.5, 0.3], [0.3, 0.3]]
    return ProductMixture(d, torch.tensor(WEIGHTS), torch.tensor(means), torch.tensor(stds))


def torus_mixture(schedule: NoiseSchedule = NoiseSchedule()) -> ProductMixture:
    """Three wrapped normals on the unit 2-torus; one straddles the periodic boundary."""
    d = Diffusion(StateSpace.torus(2, period=1.0), schedule)
    means = [[0.2, 0.3], [0.7, 0.6], [0.0, 0.9]]
    stds = [[0.05, 0.08], [0.1, 0.06], [0.07, 0.07]]
    return ProductMixture(d, torch.tensor(WEIGHTS), torch.tensor(means), torch.tensor(stds))


def mixed_mixture(schedule: NoiseSchedule = NoiseSchedule()) -> ProductMixture:
    """Two periodic entries (period 2.5, like an in-plane coordinate in Å) and one Euclidean entry."""
    space = StateSpace((3,), period=torch.tensor([2.5, 2.5, 0.0]))
    d = Diffusion(space, schedule)
    means = [[0.5, 0.75, -1.5], [1.75, 1.5, 1.0], [0.0, 2.25, 0.0]]
    stds = [[0.12, 0.2, 0.3], [0.25, 0.15, 0.5], [0.18, 0.18, 0.2]]
    return ProductMixture(d, torch.tensor(WEIGHTS), torch.tensor(means), torch.tensor(stds))


TARGETS = {"euclidean": euclidean_mixture, "torus": torus_mixture, "mixed": mixed_mixture}
