"""Rigid-body diffusion (flat entries × SO(3)) against exact scores of analytic targets."""

import math

import pytest
import torch

from digmat.core import Diffusion, StateSpace
from digmat.core.rigid import RigidDiffusion, RigidState, rigid_dsm_loss, sample_rigid_sde
from digmat.core.so3 import SO3Schedule, exp_map, geodesic_angle, igso3_log_density, igso3_score

F64 = torch.float64


def _diffusion(rotation_scale=None) -> RigidDiffusion:
    return RigidDiffusion(Diffusion(StateSpace.euclidean(2)), SO3Schedule(sigma_min=0.1, sigma_max=3.0),
                          rotation_scale=rotation_scale)


def test_exact_predictor_of_a_point_mass_has_zero_loss_and_scores_round_trip():
    d = _diffusion()
    x0 = torch.tensor([[0.3, -1.2]], dtype=F64).expand(64, 2)
    R0 = exp_map(torch.tensor([[0.4, -0.2, 1.0]], dtype=F64)).expand(64, 3, 3)

    def exact(state, t):
        alpha = d.flat.schedule.alpha(t)[:, None]
        sigma = d.flat.schedule.sigma(t)[:, None]
        s_R = igso3_score(state.R @ R0.transpose(1, 2), d.rotation_sigma(t))
        return (state.x - alpha * x0) / sigma, -d.rotation_sigma(t)[:, None] * s_R

    out = rigid_dsm_loss(d, exact, RigidState(x0, R0), generator=torch.Generator().manual_seed(0))
    assert float(out.loss) < 1e-16
    wrong = rigid_dsm_loss(d, lambda s, t: tuple(1.1 * e for e in exact(s, t)), RigidState(x0, R0),
                           generator=torch.Generator().manual_seed(0))
    assert float(wrong.rotation) > 1e-3 and float(wrong.flat) > 1e-3

    t = torch.linspace(0.05, 1.0, 64, dtype=F64)
    eps_x, eps_R = torch.randn(64, 2, dtype=F64), torch.randn(64, 3, dtype=F64)
    s_x, s_R = d.eps_to_score(eps_x, eps_R, t)
    torch.testing.assert_close(-s_R * d.rotation_sigma(t)[:, None], eps_R)
    torch.testing.assert_close(d.flat.score_to_eps(s_x, t), eps_x)


@pytest.mark.parametrize("rotation_scale", [None, 0.8])
def test_reverse_chain_with_the_exact_score_reproduces_a_two_mode_target(rotation_scale):
    """x ~ N(m, s0^2) per entry, R a 0.3/0.7 mixture at I and at a 120° turn (blurred by IGSO3(sigma_min)
    on the geometric clock; point masses on the tied clock, where sigma_R(0) = 0)."""
    d = _diffusion(rotation_scale)
    m, s0 = torch.tensor([0.5, -0.8], dtype=F64), 0.3
    centres = torch.stack([torch.eye(3, dtype=F64), exp_map(torch.tensor([0.0, 0.0, 2 * math.pi / 3], dtype=F64))])
    w = torch.tensor([0.3, 0.7], dtype=F64)

    def score(state, t):
        alpha = d.flat.schedule.alpha(t)[:, None]
        var = alpha**2 * s0**2 + d.flat.schedule.sigma(t)[:, None] ** 2
        s_x = -(state.x - alpha * m) / var
        sig = d.rotation_sigma(t)
        rel = state.R[:, None] @ centres.transpose(1, 2)[None]  # (B, 2, 3, 3)
        logp = igso3_log_density(rel, sig[:, None]) + w.log()
        post = torch.softmax(logp, dim=1)
        s_R = (post[..., None] * igso3_score(rel, sig[:, None])).sum(1)
        return s_x, s_R

    g = torch.Generator().manual_seed(3)
    out = sample_rigid_sde(d, score, 2000, steps=200, generator=g, dtype=F64)
    to_centre = geodesic_angle(out.R[:, None], centres[None])  # (B, 2)
    nearest = to_centre.min(1)
    share = (nearest.indices == 1).double().mean()
    assert abs(float(share) - 0.7) < 0.03
    if rotation_scale is None:  # IGSO3(0.1) is nearly Maxwell with scale 0.1: mean angle 2 * 0.1 * sqrt(2 / pi) = 0.160
        assert abs(float(nearest.values.mean()) - 0.160) < 0.02
        assert float(nearest.values.max()) < 0.6
    else:  # point masses: the last (noise-free) step lands on them
        assert float(nearest.values.mean()) < 0.02
    torch.testing.assert_close(out.x.mean(0), m, atol=0.03, rtol=0)
    torch.testing.assert_close(out.x.std(0), torch.full((2,), s0, dtype=F64), atol=0.03, rtol=0)


def test_tied_rotation_noise_follows_the_flat_clock():
    d = _diffusion(0.8)
    t = torch.tensor([0.0, 1e-3, 0.2, 0.5, 1.0], dtype=F64)
    expected = (0.8 * d.flat.schedule.sigma_tilde(t)).clamp(0.1, 3.0)
    expected[0] = 0.0
    torch.testing.assert_close(d.rotation_sigma(t), expected)
    with pytest.raises(ValueError, match="rotation_scale"):
        _diffusion(0.0)


def test_prior_is_haar_and_flat_prior():
    d = _diffusion()
    s = d.sample_prior(20000, generator=torch.Generator().manual_seed(1), dtype=F64)
    # Haar: E[trace R] = 0, E[1 + 2 cos omega] = 0
    assert abs(float(s.R.diagonal(dim1=-2, dim2=-1).sum(-1).mean())) < 0.05
    torch.testing.assert_close(s.R @ s.R.transpose(1, 2), torch.eye(3, dtype=F64).expand(20000, 3, 3))
    assert abs(float(s.x.mean())) < 0.03 and abs(float(s.x.std()) - 1) < 0.03
