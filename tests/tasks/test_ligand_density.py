"""Log-densities of ligand poses: the Atoms -> pose -> ODE path against an analytic pose density in
Å (scipy's normal, the wrapped normal, the IGSO3 series), and the shipped model's preference for
the crystal pose over the same pose moved."""

import math

import numpy as np
import pytest
import torch
from scipy import stats

pytest.importorskip("rdkit", reason="needs the ligand extra (rdkit)")

from digmat.core import RigidFlowConfig, RigidState  # noqa: E402
from digmat.core.so3 import exp_map, igso3_log_density, igso3_sample  # noqa: E402
from digmat.core.torus import wrapped_normal_log_prob  # noqa: E402
from digmat.ligand.system import LigandSystem  # noqa: E402
from digmat.tasks.ligand_density import pose_log_density  # noqa: E402

F64 = torch.float64
pytestmark = pytest.mark.usefixtures("one_thread")


class AnalyticPoseModel:
    """Stands in for a score model: the exact score of state x[:3] ~ N(m, v I), torsions ~ WN(mu, s),
    R ~ IGSO3(s_R) about R_a at t = 0, carried through the system's forward process."""

    def __init__(self, system, m, v, mu, s, R_a, s_R):
        self.m, self.v, self.mu, self.s, self.R_a, self.s_R = m, v, mu, s, R_a, s_R
        self.d = system.diffusion()

    def diffusion(self, system):
        return self.d

    def log_p(self, x, R, t):
        sched = self.d.flat.schedule
        a, sig, st = sched.alpha(t)[:, None], sched.sigma(t)[:, None], sched.sigma_tilde(t)[:, None]
        var = a**2 * self.v + sig**2
        centroid = (-0.5 * (x[:, :3] - a * self.m) ** 2 / var - 0.5 * torch.log(2 * math.pi * var)).sum(1)
        torsion = wrapped_normal_log_prob(x[:, 3:], self.mu, torch.sqrt(self.s**2 + st**2), 2 * math.pi).sum(1)
        sig_R = torch.sqrt(self.s_R**2 + self.d.rotation_sigma(t) ** 2)
        return centroid + torsion + igso3_log_density(R @ self.R_a.T, sig_R)

    def score_fn(self, system):
        def score(state, t):
            with torch.enable_grad():
                x = state.x if state.x.requires_grad else state.x.detach().requires_grad_(True)
                eps = torch.zeros(len(t), 3, dtype=F64, requires_grad=True)
                return torch.autograd.grad(self.log_p(x, exp_map(eps) @ state.R, t).sum(), (x, eps), create_graph=True)

        return score


def test_pose_densities_in_angstrom_match_an_analytic_pose_distribution(pocket_1uou):
    pocket, mol = pocket_1uou
    heavy = np.array([a.GetAtomicNum() > 1 for a in mol.GetAtoms()])
    centre = mol.GetConformer().GetPositions()[heavy].mean(axis=0)
    system = LigandSystem(mol, pocket, centre, length_scale=2.5)
    assert system.num_torsions == 2
    m, v = torch.tensor([0.3, -0.2, 0.1], dtype=F64), 0.04
    mu, s = torch.tensor([1.0, -2.0], dtype=F64), 0.3
    R_a, s_R = exp_map(torch.tensor([0.4, -0.7, 0.2], dtype=F64)), 0.25
    model = AnalyticPoseModel(system, m, v, mu, s, R_a, s_R)
    g = torch.Generator().manual_seed(2)
    x = torch.cat([m + math.sqrt(v) * torch.randn(4, 3, generator=g, dtype=F64),
                   mu + s * torch.randn(4, 2, generator=g, dtype=F64)], 1)
    R = igso3_sample(4, s_R, g, dtype=F64) @ R_a
    atoms = system.to_atoms(RigidState(x, R))
    before = [a.positions.copy() for a in atoms]

    log_p = pose_log_density(model, system, atoms, config=RigidFlowConfig(steps=96))

    # the same density written in Å at t_min: centroid c = centre + L x, so N(centre + L a m, L^2 (a^2 v + sigma^2))
    sched, L = system.diffusion().flat.schedule, 2.5
    t = torch.tensor(sched.t_min, dtype=F64)
    a, sig, st = float(sched.alpha(t)), float(sched.sigma(t)), float(sched.sigma_tilde(t))
    c = system.centroids(RigidState(x, R)).numpy()
    expected = stats.multivariate_normal(centre + L * a * m.numpy(), L**2 * (a**2 * v + sig**2) * np.eye(3)).logpdf(c)
    expected = expected + wrapped_normal_log_prob(x[:, 3:], mu, math.sqrt(s**2 + st**2), 2 * math.pi).sum(1).numpy()
    sig_R = torch.sqrt(s_R**2 + system.diffusion().rotation_sigma(t.expand(4)) ** 2)
    expected = expected + igso3_log_density(R @ R_a.T, sig_R).numpy()
    np.testing.assert_allclose(log_p, expected, atol=0.05)
    assert all(np.array_equal(a.positions, b) for a, b in zip(atoms, before))  # inputs untouched
    with pytest.raises(ValueError, match="batch_size"):
        pose_log_density(model, system, atoms, batch_size=0)


def test_shipped_model_puts_more_density_on_the_crystal_pose_than_on_it_moved(pocket_1uou):
    """1uou is a training complex: its crystal pose is a mode of the model (measured at 100 steps:
    log p 2.9 nats per Å^3 rad^2 at the crystal pose, -12.8 moved 2 Å, -11.0 moved 4 Å with stage
    14; 2.6 / -12.0 / -10.5 with stage 12)."""
    from digmat.pretrained import load_model

    pocket, mol = pocket_1uou
    model = load_model("ligand")
    x = mol.GetConformer().GetPositions()
    heavy = np.array([a.GetAtomicNum() > 1 for a in mol.GetAtoms()])
    system = model.system(mol, pocket, x[heavy].mean(axis=0))
    log_p = pose_log_density(model, system, np.stack([x, x + [2.0, 0.0, 0.0], x + [0.0, 0.0, 4.0]]),
                             config=RigidFlowConfig(steps=25))
    assert np.isfinite(log_p).all()
    assert log_p[0] > log_p[1] + 5 and log_p[0] > log_p[2] + 5, log_p


def test_importance_weights_of_an_exact_model_are_uniform_and_of_a_wrong_one_are_not():
    """If log p = −E/k_BT + c (the model is the Boltzmann distribution), every weight is 1/S and the
    effective sample size is S; the box mask zeroes poses; a model off by a tilt loses ESS by the
    exact amount (two poses: ESS = 1/(w_1² + w_2²))."""
    from digmat.ligand import KB_KCAL
    from digmat.tasks.ligand_density import boltzmann_importance_weights

    kT = KB_KCAL * 300.0
    energy = np.array([-8.0, -7.5, -6.0, -9.1])
    w, ess = boltzmann_importance_weights(-energy / kT + 3.0, energy, 300.0)
    np.testing.assert_allclose(w, 0.25)
    assert ess == pytest.approx(4.0)
    w, ess = boltzmann_importance_weights(-energy / kT, energy, 300.0, keep=[True, False, True, True])
    np.testing.assert_allclose(w, [1 / 3, 0.0, 1 / 3, 1 / 3])
    w, ess = boltzmann_importance_weights(np.array([0.0, math.log(3.0)]), np.zeros(2), 300.0)
    np.testing.assert_allclose(w, [0.75, 0.25])
    assert ess == pytest.approx(1 / (0.75**2 + 0.25**2))
    with pytest.raises(ValueError, match="one length"):
        boltzmann_importance_weights(np.zeros(3), np.zeros(2), 300.0)
    with pytest.raises(ValueError, match="no sample"):
        boltzmann_importance_weights(np.zeros(2), np.zeros(2), 300.0, keep=[False, False])
