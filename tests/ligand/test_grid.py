"""Grid maps: exact for trilinear fields, second-order for smooth ones, walls outside."""

import numpy as np
import pytest
import torch

from digmat.ligand.grid import GridMaps


def _probe(points, kind):
    x, y, z = points.unbind(-1)
    if kind == 0:  # trilinear: interpolated exactly
        return 1.0 + 2.0 * x - 0.5 * y + 0.25 * z + 0.1 * x * y * z
    return torch.exp(-((points - 1.0) ** 2).sum(-1) / 4.0)  # smooth


def test_interpolation_and_gradient():
    maps = GridMaps.compute(_probe, [0, 7], center=[0.5, -1.0, 2.0], size=[6.0, 5.0, 4.0], spacing=0.25)
    g = torch.Generator().manual_seed(0)
    x = (torch.rand(16, 5, 3, generator=g, dtype=torch.float64) - 0.5) * torch.tensor([5.0, 4.0, 3.0]) \
        + torch.tensor([0.5, -1.0, 2.0])
    x.requires_grad_(True)
    exact = _probe(x, 0).sum(-1)
    got = maps.energy(x, [0] * 5)
    assert torch.allclose(got, exact, atol=1e-10)
    grad = torch.autograd.grad(got.sum(), x)[0]
    grad_exact = torch.autograd.grad(exact.sum(), x)[0]
    assert (grad - grad_exact).abs().max() < 0.05  # trilinear gradient: piecewise, O(h) off for the xyz term
    # smooth field: trilinear error <= h²/8 Σ_d max|∂²f/∂x_d²| = 0.0625/8 * 1.5 ≈ 0.012 per atom
    smooth = maps.energy(x, [7] * 5)
    assert (smooth - _probe(x, 1).sum(-1)).abs().max() < 5 * 0.012
    mixed = maps.energy(x, [0, 7, 0, 7, 7])
    assert (mixed - _probe(x[:, [0, 2]], 0).sum(-1) - _probe(x[:, [1, 3, 4]], 1).sum(-1)).abs().max() < 3 * 0.012


def test_outside_is_a_wall_and_errors():
    maps = GridMaps.compute(_probe, [0], center=[0, 0, 0], size=[2, 2, 2], spacing=0.5, outside=100.0)
    x = torch.tensor([[[0.0, 0.0, 0.0], [5.0, 0.0, 0.0]]], dtype=torch.float64)
    assert float(maps.energy(x, [0, 0])) == pytest.approx(float(_probe(x[:, :1], 0).sum()) + 100.0)
    with pytest.raises(ValueError, match="no map for atom type 3"):
        maps.energy(x, [0, 3])
    with pytest.raises(ValueError, match="positive size"):
        GridMaps.compute(_probe, [0], center=[0, 0, 0], size=[2, 0, 2])
    assert maps.shape == (5, 5, 5) and np.allclose(maps.origin.numpy(), -1.0)
