"""Anharmonic corrections of harmonic basin free energies (digmat.adsorption.anharmonic).

Independent references: a harmonic well, whose correction is exactly 0, and a quartic well
``½ k d² + c d⁴`` per coordinate, whose configurational integral is a one-dimensional quadrature.
"""

from __future__ import annotations

import numpy as np
import pytest
from ase import units
from ase.build import fcc111
from ase.calculators.calculator import Calculator, all_changes

from digmat.adsorption import convert_ase_tags, reference_search
from digmat.adsorption.anharmonic import anharmonic_corrections, anharmonic_probabilities

K, HEIGHT = 5.0, 1.3  # eV/Å², Å above the top layer


class Well(Calculator):
    """The adsorbate atom (the last one) in ``Σ_α ½ K d_α² + c d_α⁴`` around a fixed point; the slab feels nothing."""

    implemented_properties = ["energy", "forces"]

    def __init__(self, center, quartic=0.0, stiffness=K):
        super().__init__()
        self.center, self.quartic, self.stiffness = np.asarray(center, float), float(quartic), float(stiffness)

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        d = self.atoms.positions[-1] - self.center
        forces = np.zeros((len(self.atoms), 3))
        forces[-1] = -(self.stiffness * d + 4 * self.quartic * d ** 3)
        self.results = {"energy": float((0.5 * self.stiffness * d ** 2 + self.quartic * d ** 4).sum()), "forces": forces}


def _search(quartic, offset=(0.3, 0.2)):
    """The well ``offset`` (Å, in-plane) from a bridge point of Pt(111), searched with its own energy."""
    slab = convert_ase_tags(fcc111("Pt", (2, 2, 3), vacuum=8.0))
    top = slab.positions[slab.get_tags() == 1]
    a, b = top[0], top[1]
    center = np.array([(a[0] + b[0]) / 2 + offset[0], (a[1] + b[1]) / 2 + offset[1], top[:, 2].max() + HEIGHT])
    return reference_search(slab, "O", Well(center, quartic), num_random=0, fmax=0.001, max_steps=200), center


@pytest.fixture(scope="module")
def quartic():
    return _search(40.0)


def test_a_harmonic_well_needs_no_correction():
    result, center = _search(0.0)
    assert len(result.minima) == 1
    (c,) = anharmonic_corrections(result, Well(center), 1200.0, num_samples=16, widen=1.0, min_effective_samples=0)
    assert c.correction == pytest.approx(0.0, abs=1e-6) and c.in_basin == 1.0 and c.effective_samples == pytest.approx(16)
    (c,) = anharmonic_corrections(result, Well(center), 1200.0, num_samples=256, widen=1.5)  # a wider proposal: still 0 on average
    assert abs(c.correction) < 4 * c.stderr + 1e-3


@pytest.mark.parametrize("temperature", [300.0, 1200.0])
def test_a_quartic_well_matches_quadrature(quartic, temperature):
    """ΔF = −3 k_BT ln(∫ exp(−(½Kd² + cd⁴)/k_BT) dd / sqrt(2π k_BT / K')), K' the search's own
    finite-difference curvature."""
    result, center = quartic
    (m,) = result.minima
    k_fd = float(np.mean(np.diag(m.hessian)))
    kt = units.kB * temperature
    d = np.linspace(-3.0, 3.0, 200001)
    z1 = np.trapezoid(np.exp(-(0.5 * K * d ** 2 + 40.0 * d ** 4) / kt), d)
    exact = -3 * kt * np.log(z1 / np.sqrt(2 * np.pi * kt / k_fd))
    (c,) = anharmonic_corrections(result, Well(center, 40.0), temperature, num_samples=512, max_samples=2048,
                                  target_stderr=0.0, seed=3)
    assert c.calls == 2048
    assert exact > 0.005 if temperature == 1200.0 else exact > 0.0  # the quartic term stiffens the well
    assert c.correction == pytest.approx(exact, abs=4 * c.stderr + 2e-3)
    p = anharmonic_probabilities(result, [c])
    assert p.tolist() == [1.0]


def test_adaptive_proposals_rescue_a_basin_softer_than_its_hessian():
    """The search's Hessian says K = 5 eV/Å²; the energy sampled is a well of K' = 1 eV/Å², so the
    draws of the widened harmonic proposal are too narrow. Exact: ΔF = −(3/2) k_BT ln(K / K')
    against the search's own curvature."""
    result, center = _search(0.0)
    (m,) = result.minima
    k_fd = float(np.mean(np.diag(m.hessian)))
    kt = units.kB * 1200.0
    exact = -1.5 * kt * np.log(k_fd / 1.0)
    run = dict(num_samples=128, max_samples=1024, target_stderr=0.0, seed=4)
    (fixed,) = anharmonic_corrections(result, Well(center, stiffness=1.0), 1200.0, adapt=False, **run)
    (adaptive,) = anharmonic_corrections(result, Well(center, stiffness=1.0), 1200.0, **run)
    assert exact < -0.2  # a large correction: the basin is much wider than the Hessian says
    assert adaptive.correction == pytest.approx(exact, abs=4 * adaptive.stderr + 2e-3)
    assert adaptive.effective_samples > 1.5 * fixed.effective_samples and adaptive.stderr < fixed.stderr  # 750 vs 210-420 over seeds


def test_rounds_stop_at_the_target_error(quartic):
    result, center = quartic
    run = dict(num_samples=32, max_samples=256)
    (loose,) = anharmonic_corrections(result, Well(center, 40.0), 1200.0, target_stderr=1.0, min_effective_samples=0, **run)
    (tight,) = anharmonic_corrections(result, Well(center, 40.0), 1200.0, target_stderr=1e-6, **run)
    assert loose.calls == 32 and tight.calls == 256 and tight.stderr < loose.stderr
    assert loose.converged and not tight.converged  # tight stopped at max_samples, short of its target
    # a loose error target is not enough while the weights' effective sample size is small
    (few,) = anharmonic_corrections(result, Well(center, 40.0), 1200.0, target_stderr=1.0, min_effective_samples=40, **run)
    assert few.calls > 32 and few.effective_samples >= 40


def test_probabilities_weigh_the_corrections(quartic):
    result, center = quartic
    (c,) = anharmonic_corrections(result, Well(center, 40.0), 600.0, num_samples=8)
    with pytest.raises(ValueError, match="several temperatures"):
        anharmonic_probabilities(result, [c, *anharmonic_corrections(result, Well(center, 40.0), 300.0, num_samples=8)])
    for kwargs, message in (({"num_samples": 1}, "num_samples"), ({"num_samples": 64, "max_samples": 32}, "max_samples"),
                            ({"widen": 0.5}, "widen"), ({"target_stderr": -1.0}, "target_stderr")):
        with pytest.raises(ValueError, match=message):
            anharmonic_corrections(result, Well(center, 40.0), 600.0, **kwargs)
    with pytest.raises(ValueError, match="temperature"):
        anharmonic_corrections(result, Well(center, 40.0), 0.0)


def test_probabilities_add_the_corrections_to_the_free_energies():
    """By hand: p_i ∝ g_i exp(−(E_i + F_vib,i + ΔF_i)/k_BT) over the corrected minima, 0 elsewhere."""
    from digmat.adsorption import BasinCorrection

    result = reference_search(convert_ase_tags(fcc111("Pt", (2, 2, 3), vacuum=8.0)), "O", "emt", num_random=2, seed=0)
    usable = [i for i, m in enumerate(result.minima) if "saddle" not in m.flags]
    assert len(usable) >= 2
    shifts = np.linspace(-0.05, 0.05, len(usable))
    corrections = [BasinCorrection(i, 600.0, float(d), 0.0, 1.0, 1.0, 1) for i, d in zip(usable, shifts, strict=True)]
    corrections[-1] = BasinCorrection(usable[-1], 600.0, float("inf"), float("inf"), 0.0, 0.0, 1)  # no draw stayed
    kt = units.kB * 600.0
    w = np.zeros(len(result.minima))
    for c in corrections[:-1]:
        m = result.minima[c.minimum]
        w[c.minimum] = m.multiplicity * np.exp(-(m.energy + m.vib_free_energy(600.0) + c.correction) / kt)
    np.testing.assert_allclose(anharmonic_probabilities(result, corrections), w / w.sum(), rtol=1e-9)


def test_site_kinds_follow_the_basins_boltzmann_distribution():
    """The basin's split over site kinds is that of exact draws from its Boltzmann distribution.

    Reference: the quartic well is separable, so each coordinate is drawn exactly by inverse CDF
    on a fine grid; every draw is labelled by the nearest site point of the frozen slab. The
    well sits 0.3 Å from a bridge toward a hollow, so at 1,200 K about a fifth of the
    distribution lies nearer the hollow's point.
    """
    from digmat.adsorption import SiteAssigner, anharmonic_site_probabilities

    result, center = _search(40.0, offset=(0.0, 0.3))
    assert len(result.minima) == 1 and result.minima[0].site_kind == "bridge"  # the minimum's own label
    temperature = 1200.0
    (c,) = anharmonic_corrections(result, Well(center, 40.0), temperature, num_samples=512, max_samples=2048,
                                  target_stderr=0.0, seed=5)
    kt = units.kB * temperature
    d = np.linspace(-1.0, 1.0, 20001)
    cdf = np.cumsum(np.exp(-(0.5 * K * d ** 2 + 40.0 * d ** 4) / kt))
    cdf /= cdf[-1]
    rng = np.random.default_rng(0)
    exact = center + np.interp(rng.random((20000, 3)), cdf, d)
    assigner = SiteAssigner(result.slab)
    kinds = [assigner.point_keys[assigner.nearest_point(x)[0]][0] for x in exact]
    expected = {k: kinds.count(k) / len(kinds) for k in set(kinds)}
    assert len([k for k, v in expected.items() if v > 0.05]) >= 2  # the test means something
    assert sum(c.site_kinds.values()) == pytest.approx(1.0)
    for kind in set(expected) | set(c.site_kinds):  # 2,048 weighted draws, ESS ~1,050: s.e. of a share ~0.012
        assert c.site_kinds.get(kind, 0.0) == pytest.approx(expected.get(kind, 0.0), abs=0.04), kind
    assert anharmonic_site_probabilities(result, [c]) == pytest.approx(c.site_kinds)
    with pytest.raises(ValueError, match="site-kind"):
        from digmat.adsorption import BasinCorrection

        anharmonic_site_probabilities(result, [BasinCorrection(0, temperature, 0.0, 0.0, 1.0, 1.0, 1)])
