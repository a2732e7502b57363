"""digmat.boltzmann and digmat.nn.pairnet: energies against hand-written formulas, symmetries,
W2 metrics on constructed cases, and the conventions the shipped reference samples follow."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from ase import Atoms

from digmat.boltzmann import (SYSTEMS, DoubleWell4, LennardJones13, distance_w2, energy_w2, find_boltzmann_dir,
                              load_reference, pair_cost_matrix, remove_com, stein_checks, x_w2)
from digmat.nn.pairnet import PairNet, PairNetConfig
from digmat.testing import assert_permutation_equivariant, assert_rotation_equivariant, assert_translation_invariant

DATA = find_boltzmann_dir()
needs_data = pytest.mark.skipif(DATA is None, reason="Boltzmann reference samples (../shared/data/boltzmann) not available")


def _dw4_numpy(x, a=0.0, b=-4.0, c=0.9, d0=4.0):
    p = x.reshape(4, 2)
    total = 0.0
    for i in range(4):
        for j in range(i + 1, 4):
            u = np.linalg.norm(p[i] - p[j]) - d0
            total += a * u + b * u**2 + c * u**4
    return total


def _lj13_numpy(x):
    p = x.reshape(13, 3)
    total = 0.0
    for i in range(13):
        for j in range(13):
            if i != j:  # iDEM: ordered pairs, i.e. twice the sum over i < j
                r = np.linalg.norm(p[i] - p[j])
                total += r**-12 - 2 * r**-6
    return total + 0.5 * ((p - p.mean(0)) ** 2).sum()


def _spread(rng, n, dim, min_dist, box):
    """A random configuration with all distances above min_dist."""
    pts = []
    while len(pts) < n:
        cand = rng.uniform(-box, box, size=dim)
        if all(np.linalg.norm(cand - q) > min_dist for q in pts):
            pts.append(cand)
    return np.concatenate(pts)


def _orthogonal(rng, dim, proper=False):
    q, r = np.linalg.qr(rng.normal(size=(dim, dim)))
    q = q * np.sign(np.diag(r))
    if proper and np.linalg.det(q) < 0:
        q[:, 0] *= -1
    return q


def _transform(x, n, dim, rng, shift=True):
    """Permute particles, apply a random orthogonal map (with a reflection when dim = 2) and translate."""
    p = x.reshape(-1, n, dim)[:, rng.permutation(n)]
    q = _orthogonal(rng, dim)
    if dim == 2 and np.linalg.det(q) > 0:
        q[:, 0] *= -1
    p = p @ q.T + (rng.normal(size=dim) * 3 if shift else 0)
    return p.reshape(x.shape)


# --------------------------------------------------------------------------- energies
def test_dw4_energy_matches_the_formula():
    rng = np.random.default_rng(0)
    x = rng.normal(scale=3.0, size=(16, 8))
    got = SYSTEMS["dw4"].energy(torch.tensor(x)).numpy()
    np.testing.assert_allclose(got, [_dw4_numpy(r) for r in x], rtol=1e-10)
    other = DoubleWell4(a=0.3, b=-2.0, c=0.5, d0=3.0).energy(torch.tensor(x)).numpy()
    np.testing.assert_allclose(other, [_dw4_numpy(r, 0.3, -2.0, 0.5, 3.0) for r in x], rtol=1e-10)


def test_lj13_energy_matches_the_formula_and_stays_finite_at_overlaps():
    rng = np.random.default_rng(1)
    x = np.stack([_spread(rng, 13, 3, 0.8, 1.6) for _ in range(4)])
    system = SYSTEMS["lj13"]
    np.testing.assert_allclose(system.energy(torch.tensor(x)).numpy(), [_lj13_numpy(r) for r in x], rtol=1e-10)
    # below d_min the pair term is continued linearly: continuous at d_min, finite with finite gradients at d = 0
    pair = system.pair_energy(torch.tensor([0.5 - 1e-9, 0.5, 0.5 + 1e-9], dtype=torch.float64))
    assert torch.allclose(pair, pair[1].expand(3), rtol=1e-6)
    x0 = torch.tensor(x[:1]).clone()
    x0[0, 3:6] = x0[0, 0:3]                         # two coincident particles
    x0.requires_grad_(True)
    e = system.energy(x0)
    (g,) = torch.autograd.grad(e.sum(), x0)
    assert torch.isfinite(e).all() and torch.isfinite(g).all() and e.item() > 1e4


@pytest.mark.parametrize("name", ["dw4", "lj13"])
def test_energies_are_invariant_and_the_training_target_only_tethers_the_com(name):
    system = SYSTEMS[name]
    rng = np.random.default_rng(2)
    x = np.stack([_spread(rng, system.n_particles, system.dim, 0.9, 2.0 if name == "lj13" else 4.0) for _ in range(3)])
    e = system.energy(torch.tensor(x))
    moved = torch.tensor(_transform(x, system.n_particles, system.dim, rng))
    torch.testing.assert_close(system.energy(moved), e, rtol=1e-9, atol=1e-9)
    y = system.to_state(torch.tensor(x))
    com = y.reshape(3, system.n_particles, system.dim).mean(1)
    expected = -e / system.temperature - 0.5 * system.n_particles * (com**2).sum(-1)
    torch.testing.assert_close(system.training_log_target(y), expected)
    torch.testing.assert_close(system.from_state(y), torch.tensor(x))


def test_lj13_energy_passes_the_shared_symmetry_checks():
    system = SYSTEMS["lj13"]
    atoms = Atoms("Ar13", positions=_spread(np.random.default_rng(3), 13, 3, 0.9, 1.6).reshape(13, 3))

    def fn(a):
        return system.energy(torch.tensor(a.positions.reshape(1, -1))).numpy()

    for check in (assert_rotation_equivariant, assert_translation_invariant, assert_permutation_equivariant):
        check(fn, atoms, atol=1e-8, rtol=1e-9)


# --------------------------------------------------------------------------- network
def _random_net(n, dim, **kw):
    torch.manual_seed(0)
    net = PairNet(PairNetConfig(n_particles=n, dim=dim, width=16, num_rbf=8, **kw)).double()
    for p in net.parameters():                      # the output layers start at zero: make them count
        torch.nn.init.normal_(p, std=0.3)
    return net


@pytest.mark.parametrize("n,dim", [(4, 2), (13, 3)])
def test_pairnet_is_invariant_in_relative_coordinates_and_exact_on_the_com(n, dim):
    net = _random_net(n, dim, powers=(1, 2))
    rng = np.random.default_rng(4)
    y = torch.tensor(rng.normal(size=(5, n * dim)))
    t = torch.rand(5, dtype=torch.float64)
    moved = torch.tensor(_transform(y.numpy(), n, dim, rng, shift=False))
    torch.testing.assert_close(net(moved, t) + 0.5 * (moved**2).sum(-1), net(y, t) + 0.5 * (y**2).sum(-1))
    shift = torch.tensor(rng.normal(size=dim))
    ys = (y.reshape(5, n, dim) + shift).reshape(5, -1)
    # a translation changes only the prior term -|y|^2/2
    torch.testing.assert_close(net(ys, t) - net(y, t), -0.5 * (ys**2).sum(-1) + 0.5 * (y**2).sum(-1))


def test_pairnet_lj13_passes_the_shared_symmetry_checks_on_the_learned_part():
    net = _random_net(13, 3)
    atoms = Atoms("Ar13", positions=np.random.default_rng(5).normal(size=(13, 3)))

    def fn(a):
        y = torch.tensor(a.positions.reshape(1, -1))
        with torch.no_grad():
            return (net(y, torch.full((1,), 0.3, dtype=torch.float64)) + 0.5 * (y**2).sum(-1)).numpy()

    for check in (assert_rotation_equivariant, assert_translation_invariant, assert_permutation_equivariant):
        check(fn, atoms, atol=1e-9, rtol=1e-9)


def test_untrained_pairnet_is_the_prior_and_has_third_derivatives():
    net = PairNet(PairNetConfig(n_particles=4, dim=2, width=8, num_rbf=4)).double()
    y = torch.randn(3, 8, dtype=torch.float64, requires_grad=True)
    t = torch.full((3,), 0.5, dtype=torch.float64)
    out = net(y, t)
    torch.testing.assert_close(out, -0.5 * (y.detach() ** 2).sum(-1))
    trained = _random_net(4, 2)
    (g,) = torch.autograd.grad(trained(y, t).sum(), y, create_graph=True)
    (h,) = torch.autograd.grad(g[:, 0].sum(), y, create_graph=True)
    (k,) = torch.autograd.grad(h[:, 0].sum(), y)
    assert torch.isfinite(k).all() and k.abs().sum() > 0


@pytest.mark.parametrize("bad", [dict(n_particles=1), dict(width=0), dict(time_features=3), dict(density_width=-1),
                                 dict(cutoff=0.0), dict(powers=()), dict(powers=(0,)), dict(num_rbf=1)])
def test_pairnet_config_rejects_bad_values(bad):
    with pytest.raises(ValueError):
        PairNetConfig(**bad)


def test_pairnet_config_round_trips():
    config = PairNetConfig(n_particles=13, dim=3, powers=(1, 2))
    assert PairNetConfig.from_dict(config.to_dict()) == config


# --------------------------------------------------------------------------- metrics
def test_energy_w2_on_constructed_cases():
    rng = np.random.default_rng(6)
    a = rng.normal(size=500)
    assert energy_w2(a, a) == 0.0
    assert energy_w2(a, rng.permutation(a)) == 0.0
    assert energy_w2(a, a + 0.7) == pytest.approx(0.7, abs=1e-12)
    # unequal sizes, by hand: quantiles 0|1 against 0|0.5|1 differ by 0.5 on (1/3, 2/3]
    assert energy_w2([0.0, 1.0], [0.0, 0.5, 1.0]) == pytest.approx(np.sqrt(1 / 12), abs=1e-12)
    with pytest.raises(ValueError):
        energy_w2([0.0, np.inf], [0.0])


def _brute_cost(a, b, n, dim):
    """min over all permutations and O(d) of |A - B_pi Q^T|^2, Q by SVD."""
    A = a.reshape(n, dim) - a.reshape(n, dim).mean(0)
    B = b.reshape(n, dim) - b.reshape(n, dim).mean(0)
    best = np.inf
    for perm in itertools.permutations(range(n)):
        u, _, vt = np.linalg.svd(A.T @ B[list(perm)])
        best = min(best, ((A - B[list(perm)] @ (u @ vt).T) ** 2).sum())
    return best


def test_dw4_pair_cost_is_the_exact_minimum():
    rng = np.random.default_rng(7)
    a, b = rng.normal(size=(3, 8)), rng.normal(size=(4, 8))
    cost = pair_cost_matrix(a, b, 4, 2)
    expected = [[_brute_cost(p, q, 4, 2) for q in b] for p in a]
    np.testing.assert_allclose(cost, expected, atol=1e-9)
    proper = pair_cost_matrix(a, b, 4, 2, reflections=False)
    assert (proper >= cost - 1e-12).all()


@pytest.mark.parametrize("n,dim", [(4, 2), (13, 3)])
def test_x_w2_ignores_permutations_rotations_and_translations(n, dim):
    rng = np.random.default_rng(8)
    a = np.stack([_spread(rng, n, dim, 0.9, 2.0 if n == 13 else 4.0) for _ in range(12)])
    assert x_w2(a, a, n, dim) == pytest.approx(0.0, abs=1e-6)
    b = _transform(a, n, dim, rng)[rng.permutation(12)]
    assert x_w2(a, b, n, dim) == pytest.approx(0.0, abs=1e-6)
    # a known value: scaling every configuration by lam moves each by |1 - lam| |A| (COM-free)
    lam = 1.1
    single = a[:1]
    expected = abs(1 - lam) * np.linalg.norm(remove_com(single, n, dim))
    assert x_w2(single, lam * _transform(single, n, dim, rng), n, dim) == pytest.approx(expected, rel=1e-6)
    assert distance_w2(a, b, n, dim) == pytest.approx(0.0, abs=1e-9)
    with pytest.raises(ValueError):
        x_w2(a, a[:5], n, dim)


# --------------------------------------------------------------------------- shared reference data
@needs_data
def test_load_reference_shapes():
    assert load_reference("dw4", "test").shape == (10000, 8)
    assert load_reference("lj13", "val").shape == (10000, 39)
    with pytest.raises(ValueError):
        load_reference("lj55", "test")
    with pytest.raises(FileNotFoundError):
        load_reference("lj13", "train")


@needs_data
def test_dw4_reference_is_at_kT_1():
    checks = stein_checks(SYSTEMS["dw4"], load_reference("dw4", "test"))
    assert abs(checks["kT"] - 1.0) < 0.03               # measured 1.007 +- 0.009
    assert 4.5 < checks["virial"] < 6.5                  # measured 5.34 +- 0.32 (expected 6: a bias of the samples)


@needs_data
def test_lj13_reference_follows_ordered_pair_sum():
    x = load_reference("lj13", "test")[:4000]
    ours = stein_checks(SYSTEMS["lj13"], x)
    assert abs(ours["virial"] - 36.0) < 3.0 and abs(ours["kT"] - 1.0) < 0.03
    textbook = stein_checks(LennardJones13(pair_factor=1.0), x)
    assert textbook["virial"] < 31.0                      # the sum over i < j alone: 27.5 (the README's "k ~ 1.5")
