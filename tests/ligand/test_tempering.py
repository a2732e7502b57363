"""Parallel tempering over poses reproduces analytic Boltzmann marginals (position, orientation, torsion)."""

import math

import numpy as np
import pytest
import torch

Chem = pytest.importorskip("rdkit.Chem", reason="needs the ligand extra (rdkit)")

from rdkit.Chem import AllChem  # noqa: E402

from digmat.ligand.molecule import protonate  # noqa: E402
from digmat.ligand.pose import PoseSpace  # noqa: E402
from digmat.ligand.tempering import KB_KCAL, TemperingConfig, refine_poses, temper_poses  # noqa: E402


def test_marginals_match_analytic_boltzmann():
    """E/kT = a/2 |t - c|^2 - κ_R tr(R0ᵀR) - κ_τ Σ cos(τ - τ0), sampled at 300 K with a 4-rung ladder.

    Exact marginals: t Gaussian with variance 1/a per axis; the angle ω of R0ᵀR has density
    ∝ exp(2κ_R cos ω)(1 - cos ω) on [0, π] (Haar times Boltzmann); τ von Mises, E cos = I1/I0.
    """
    from scipy.integrate import quad
    from scipy.special import i0, i1

    mol = protonate(Chem.MolFromSmiles("CCCCC"))
    AllChem.EmbedMolecule(mol, randomSeed=3)
    space = PoseSpace.from_mol(mol)
    assert space.num_torsions == 2
    center = np.array([1.0, -2.0, 0.5])
    a, kappa_r, kappa_t = 4.0, 1.5, 2.0
    tau0 = torch.tensor([1.0, -2.0], dtype=torch.float64)
    kt = KB_KCAL * 300.0

    def energy(x):
        t, rot, tau = space.coordinates(x)
        e = 0.5 * a * ((t - torch.as_tensor(center)) ** 2).sum(-1)
        e = e - kappa_r * rot.diagonal(dim1=1, dim2=2).sum(-1) - kappa_t * torch.cos(tau - tau0).sum(-1)
        return kt * e

    config = TemperingConfig(temperature=300.0, max_temperature=1200.0, replicas=4, chains=48, steps=1500,
                             burn_in=300, record_every=4, swap_every=5, box_radius=4.0)
    s = temper_poses(space, energy, center, config, seed=0)
    assert s.energy.shape == (300, 48) and s.tau.shape == (300, 48, 2)
    assert (s.swap_rate > 0.2).all()
    for name, rate in s.acceptance.items():  # adapted at 300 K (hotter rungs may hit the step caps)
        assert 0.2 < rate[0] < 0.4, (name, rate)
    # centroid: E|t - c|^2 = 3/a (the box at 8σ truncates nothing measurable)
    r2 = ((s.t - torch.as_tensor(center)) ** 2).sum(-1)
    assert float(r2.mean()) == pytest.approx(3 / a, rel=0.05)
    # orientation: E[cos ω]
    weight = lambda w: math.exp(2 * kappa_r * math.cos(w)) * (1 - math.cos(w))  # noqa: E731
    cos_exact = quad(lambda w: math.cos(w) * weight(w), 0, math.pi)[0] / quad(weight, 0, math.pi)[0]
    cos_omega = (s.rotation.diagonal(dim1=-2, dim2=-1).sum(-1) - 1) / 2
    assert float(cos_omega.mean()) == pytest.approx(cos_exact, abs=0.03)
    # torsions: von Mises
    cos_tau = torch.cos(s.tau - tau0).mean((0, 1))
    assert np.allclose(cos_tau.numpy(), i1(kappa_t) / i0(kappa_t), atol=0.03)
    # the energies recorded are the energies of the recorded poses
    x = s.positions(space)
    assert torch.allclose(energy(x[-1]), s.energy[-1], atol=1e-8)


def test_refinement_from_one_pose_relaxes_to_the_boltzmann_marginals():
    """refine_poses from a single far-off pose (every chain) reaches the analytic centroid and torsion
    marginals of E/kT = a/2 |t - c|^2 - κ_τ Σ cos(τ - τ0) (orientation free)."""
    from scipy.special import i0, i1

    mol = protonate(Chem.MolFromSmiles("CCCCC"))
    AllChem.EmbedMolecule(mol, randomSeed=3)
    space = PoseSpace.from_mol(mol)
    center = np.array([1.0, -2.0, 0.5])
    a, kappa_t = 4.0, 2.0
    tau0 = torch.tensor([1.0, -2.0], dtype=torch.float64)
    kt = KB_KCAL * 300.0

    def energy(x):
        t, _, tau = space.coordinates(x)
        return kt * (0.5 * a * ((t - torch.as_tensor(center)) ** 2).sum(-1) - kappa_t * torch.cos(tau - tau0).sum(-1))

    n = 300
    t0 = torch.as_tensor(center + np.array([1.5, 0.0, 0.0])).expand(n, 3)
    tau_start = (tau0 + math.pi).expand(n, 2)  # the opposite of the torsion minimum
    samples, e0 = refine_poses(space, energy, t0, torch.eye(3, dtype=torch.float64).expand(n, 3, 3), tau_start,
                               center, box_radius=4.0, steps=400, step_sizes=(0.3, 0.3, 0.5), seed=1)
    assert samples.t.shape == (1, n, 3) and float(e0.min()) > float(samples.energy.mean())
    r2 = ((samples.t[0] - torch.as_tensor(center)) ** 2).sum(-1)
    assert float(r2.mean()) == pytest.approx(3 / a, rel=0.15)  # 3 standard errors at 300 chains
    cos_tau = torch.cos(samples.tau[0] - tau0).mean(0)
    assert np.allclose(cos_tau.numpy(), i1(kappa_t) / i0(kappa_t), atol=0.06)
    assert torch.allclose(energy(samples.positions(space)[0]), samples.energy[0], atol=1e-8)
    for name in ("translation", "torsions"):  # the orientation is free here: every turn is accepted
        assert 0.15 < samples.acceptance[name][0] < 0.5


def test_config_errors():
    with pytest.raises(ValueError, match="burn_in < steps"):
        TemperingConfig(steps=10, burn_in=10)
    with pytest.raises(ValueError, match="temperature"):
        TemperingConfig(temperature=400, max_temperature=300)
