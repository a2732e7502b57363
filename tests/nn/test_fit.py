"""The network can learn a known periodic vector field.

Target: the exact score of an adatom distribution on a periodic Pt(111) surface,
wrapped normal in the surface plane (period = the 1×1 surface cell, centred on
the fcc hollow) times a Gaussian in height:

    p(x, y, z) ∝ sum_n N((x, y); mu + n @ L, sigma^2 I) * N(z; z0, sigma_z^2)

The score ``grad log p`` is computed below by an independent lattice-series sum.
The period must be the substrate's own period: the network sees only atoms, so
any field it outputs is invariant under the substrate's symmetries.

Measured (CPU, float32, seed 0, 600 Adam steps of 32 samples, ~13 s):
relative MSE on 256 held-out points 0.066 after training (0.040 after 1200 steps of 64) versus 1.0 untrained.
"""

from __future__ import annotations

import numpy as np
import torch
from ase import Atoms
from ase.build import fcc111

from digmat.nn import AtomsBatch, GraphormerConfig, PeriodicGraphormer

SIGMA_XY = 0.6      # Å, in-plane width of the wrapped normal
SIGMA_Z = 0.4       # Å, height width
HEIGHT = 2.0        # Å, mean height of the adatom above the top layer
THRESHOLD = 0.1     # relative MSE required after training
STEPS = 600
BATCH = 32


def slab_with_adatom() -> tuple[Atoms, np.ndarray, float]:
    """Three-layer Pt(111) 1×1 slab (OC20 tags) + O adatom; returns slab, fcc-hollow xy, z0."""
    slab = fcc111("Pt", size=(1, 1, 3), vacuum=6.0)
    layer = slab.get_tags()                         # ase: 1 = top layer, 3 = bottom
    top = slab.positions[layer == 1][0]
    fcc_hollow = slab.positions[layer == 3][0, :2]  # ABC stacking: fcc hollow sits above layer 3
    slab.set_tags((layer == 1).astype(int))
    slab += Atoms("O", positions=[[*fcc_hollow, top[2] + HEIGHT]], tags=[2])
    return slab, fcc_hollow, top[2] + HEIGHT


def exact_score(xyz: np.ndarray, lattice: np.ndarray, mu: np.ndarray, z0: float) -> np.ndarray:
    """``(M, 3)`` score (1/Å) of the wrapped-normal × normal density at ``(M, 3)`` points."""
    n = np.array([(i, j) for i in range(-5, 6) for j in range(-5, 6)], dtype=float)
    diff = xyz[:, None, :2] - mu - (n @ lattice)[None]                 # (M, K, 2)
    logw = -(diff ** 2).sum(-1) / (2 * SIGMA_XY ** 2)
    w = np.exp(logw - logw.max(axis=1, keepdims=True))
    w /= w.sum(axis=1, keepdims=True)
    in_plane = -(w[..., None] * diff).sum(axis=1) / SIGMA_XY ** 2
    height = -(xyz[:, 2] - z0) / SIGMA_Z ** 2
    return np.concatenate([in_plane, height[:, None]], axis=1)


def log_density(xyz: np.ndarray, lattice: np.ndarray, mu: np.ndarray, z0: float) -> np.ndarray:
    n = np.array([(i, j) for i in range(-5, 6) for j in range(-5, 6)], dtype=float)
    diff = xyz[:, None, :2] - mu - (n @ lattice)[None]
    logw = -(diff ** 2).sum(-1) / (2 * SIGMA_XY ** 2)
    top = logw.max(axis=1)
    return top + np.log(np.exp(logw - top[:, None]).sum(axis=1)) - (xyz[:, 2] - z0) ** 2 / (2 * SIGMA_Z ** 2)


def sample_points(rng: np.random.Generator, count: int, lattice: np.ndarray, z0: float) -> np.ndarray:
    """Uniform over the surface cell, heights within ±0.8 Å of z0."""
    xy = rng.random((count, 2)) @ lattice
    return np.concatenate([xy, z0 + rng.uniform(-0.8, 0.8, (count, 1))], axis=1)


def test_target_score_is_the_gradient_of_the_log_density():
    slab, mu, z0 = slab_with_adatom()
    lattice = slab.cell.array[:2, :2]
    pts = sample_points(np.random.default_rng(1), 20, lattice, z0)
    h = 1e-5
    fd = np.stack([(log_density(pts + h * e, lattice, mu, z0) - log_density(pts - h * e, lattice, mu, z0))
                   / (2 * h) for e in np.eye(3)], axis=1)
    np.testing.assert_allclose(exact_score(pts, lattice, mu, z0), fd, atol=1e-5)
    # periodic in the surface cell
    shifted = pts + np.array([*(2 * lattice[0] - lattice[1]), 0.0])
    np.testing.assert_allclose(exact_score(shifted, lattice, mu, z0), exact_score(pts, lattice, mu, z0),
                               atol=1e-10)


def test_learns_wrapped_normal_score_of_an_adatom():
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    slab, mu, z0 = slab_with_adatom()
    lattice = slab.cell.array[:2, :2]
    config = GraphormerConfig(num_layers=2, embed_dim=32, num_heads=4, ffn_dim=64, num_rbf=16,
                              cutoff=5.0, time_embed_dim=16, scalar_out=0)
    model = PeriodicGraphormer(config)

    templates: dict[int, AtomsBatch] = {}

    def batch_at(points: np.ndarray) -> tuple[AtomsBatch, torch.Tensor, torch.Tensor]:
        if len(points) not in templates:
            templates[len(points)] = AtomsBatch.from_atoms([slab] * len(points))
        template = templates[len(points)]
        pos = template.positions.clone()
        adatom = template.tags == 2
        pos[adatom] = torch.as_tensor(points, dtype=pos.dtype)
        target = torch.as_tensor(exact_score(points, lattice, mu, z0), dtype=pos.dtype)
        return template.with_positions(pos), adatom, target

    held_out, held_mask, held_target = batch_at(sample_points(rng, 256, lattice, z0))

    def relative_mse() -> float:
        with torch.no_grad():
            pred = model(held_out, t=0.5, vector_mask=held_mask).vectors[held_mask]
        return float(((pred - held_target) ** 2).sum() / (held_target ** 2).sum())

    untrained = relative_mse()
    optimiser = torch.optim.Adam(model.parameters(), lr=3e-3)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, STEPS)
    for _ in range(STEPS):
        batch, mask, target = batch_at(sample_points(rng, BATCH, lattice, z0))
        pred = model(batch, t=0.5, vector_mask=mask).vectors[mask]
        loss = ((pred - target) ** 2).sum(dim=1).mean()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        schedule.step()
    trained = relative_mse()
    print(f"relative MSE on held-out points: untrained {untrained:.3f}, trained {trained:.4f}")
    assert untrained > 0.5
    assert trained < THRESHOLD
