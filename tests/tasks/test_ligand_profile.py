"""The oracle denoiser of a weighted pose set is Tweedie's formula: −s ∇ log p_t on the flat entries
and −σ_R ∇ log p_t on the orientation, with p_t written out independently here (brute-force
winding sums for the torsions, IGSO3 density for the orientation) and differentiated by
central differences; and, as a predictor, it beats predicting zero."""

import math

import pytest
import torch

from digmat.core import Diffusion, StateSpace
from digmat.core.rigid import RigidDiffusion, RigidState
from digmat.core.so3 import SO3Schedule, exp_map, igso3_log_density, random_rotations
from digmat.tasks.ligand_profile import oracle_eps

TWO_PI = 2 * math.pi


def _diffusion() -> RigidDiffusion:
    space = StateSpace((5,), period=torch.tensor([0.0, 0.0, 0.0, TWO_PI, TWO_PI]), noise_scale=1.0)
    return RigidDiffusion(Diffusion(space), SO3Schedule(sigma_min=0.01, sigma_max=3.0), rotation_scale=1.2)


def _pool(num: int, seed: int) -> tuple[RigidState, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.cat([0.5 * torch.randn(num, 3, generator=g, dtype=torch.float64),
                   TWO_PI * torch.rand(num, 2, generator=g, dtype=torch.float64)], dim=1)
    w = torch.rand(num, generator=g, dtype=torch.float64) + 0.2
    return RigidState(x, random_rotations(num, generator=g, dtype=torch.float64)), w / w.sum()


def _log_p(diffusion: RigidDiffusion, t: float, x: torch.Tensor, R: torch.Tensor, pool: RigidState, w: torch.Tensor):
    """log p_t(x, R) (up to a constant) of one state, written out with explicit winding sums."""
    tt = torch.tensor([t], dtype=torch.float64)
    a = diffusion.flat.signal_coef(tt, pool.x[:1])[0]
    s = diffusion.flat.noise_std(tt, pool.x[:1])[0]
    sigma_R = float(diffusion.rotation_sigma(tt))
    diff = x[None] - a * pool.x  # (N, 5)
    euclid = (-0.5 * (diff[:, :3] / s[:3]) ** 2).sum(1)
    n = torch.arange(-12, 13, dtype=torch.float64)
    wound = diff[:, 3:, None] + TWO_PI * n  # (N, 2, windings)
    torus = torch.logsumexp(-0.5 * (wound / s[3:, None]) ** 2, dim=-1).sum(1)
    rot = igso3_log_density(R[None] @ pool.R.transpose(-1, -2), sigma_R)
    return torch.logsumexp(torch.log(w) + euclid + torus + rot, dim=0)


@pytest.mark.parametrize("t", [0.05, 0.2, 0.4])
def test_oracle_is_tweedie_on_every_block(t):
    diffusion = _diffusion()
    pool, w = _pool(6, seed=1)
    probe, _ = _pool(3, seed=2)
    noisy, _, _ = diffusion.perturb(probe, torch.full((3,), t, dtype=torch.float64), generator=torch.Generator().manual_seed(3))
    eps_x, eps_R = oracle_eps(diffusion, noisy, t, pool, w, chunk=2)
    tt = torch.tensor([t], dtype=torch.float64)
    s = diffusion.flat.noise_std(tt, pool.x[:1])[0]
    sigma_R = float(diffusion.rotation_sigma(tt))
    h = 1e-5
    for b in range(3):
        x, R = noisy.x[b], noisy.R[b]
        grad_x = torch.stack([(_log_p(diffusion, t, x + h * e, R, pool, w) - _log_p(diffusion, t, x - h * e, R, pool, w)) / (2 * h)
                              for e in torch.eye(5, dtype=torch.float64)])
        grad_R = torch.stack([(_log_p(diffusion, t, x, exp_map(h * e) @ R, pool, w)
                               - _log_p(diffusion, t, x, exp_map(-h * e) @ R, pool, w)) / (2 * h)
                              for e in torch.eye(3, dtype=torch.float64)])
        torch.testing.assert_close(eps_x[b], -s * grad_x, atol=1e-6, rtol=1e-5)
        torch.testing.assert_close(eps_R[b], -sigma_R * grad_R, atol=1e-6, rtol=1e-5)


def test_oracle_beats_predicting_zero():
    """On noise drawn from the pool itself, the posterior mean's squared error is below E|ε|² on
    every block (it is the least-squares predictor)."""
    diffusion = _diffusion()
    pool, w = _pool(5, seed=4)
    g = torch.Generator().manual_seed(5)
    pick = torch.multinomial(w, 4000, replacement=True, generator=g)
    t = 0.15
    noisy, eps_x, eps_R = diffusion.perturb(RigidState(pool.x[pick], pool.R[pick]),
                                            torch.full((4000,), t, dtype=torch.float64), generator=g)
    pred_x, pred_R = oracle_eps(diffusion, noisy, t, pool, w)
    for block in (slice(0, 3), slice(3, 5)):
        assert ((pred_x - eps_x)[:, block] ** 2).mean() < 0.9 * (eps_x[:, block] ** 2).mean()
    assert ((pred_R - eps_R) ** 2).mean() < 0.9 * (eps_R ** 2).mean()
