"""Hessians, vibrational free energies, Boltzmann weights and site multiplicities.

Independent references: an analytic quadratic energy (exact Hessian), ASE's
own ``Vibrations`` and ``HarmonicThermo``, closed-form Boltzmann weights and
hand counts of equivalent sites.
"""

from __future__ import annotations

import numpy as np
import pytest
from ase import units
from ase.build import add_adsorbate, fcc100, fcc111, molecule
from ase.calculators.calculator import Calculator, all_changes
from ase.calculators.emt import EMT
from ase.optimize import BFGS
from ase.thermochemistry import HarmonicThermo
from ase.vibrations import Vibrations

from digmat.adsorption import convert_ase_tags
from digmat.adsorption.thermo import (
    boltzmann_probabilities,
    finite_difference_hessian,
    harmonic_free_energy,
    site_multiplicity,
    symmetry_images,
    vibrational_analysis,
)


class QuadraticCalculator(Calculator):
    """E = ½ (x − x0)ᵀ K (x − x0) over the listed atoms' coordinates (eV, Å)."""

    implemented_properties = ["energy", "forces"]

    def __init__(self, indices, x0, stiffness):
        super().__init__()
        self.indices = np.asarray(indices)
        self.x0 = np.asarray(x0, float).reshape(-1)
        self.k = np.asarray(stiffness, float)

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        d = self.atoms.positions[self.indices].reshape(-1) - self.x0
        forces = np.zeros((len(self.atoms), 3))
        forces[self.indices] = -(self.k @ d).reshape(-1, 3)
        self.results = {"energy": 0.5 * float(d @ self.k @ d), "forces": forces}


def _spd(n, rng, low=2.0, high=8.0):
    q, _ = np.linalg.qr(rng.standard_normal((n, n)))
    return q @ np.diag(rng.uniform(low, high, n)) @ q.T


def test_hessian_of_a_quadratic_energy_is_exact():
    rng = np.random.default_rng(0)
    atoms = molecule("CH3OH")
    idx = [0, 1, 3]
    k = _spd(9, rng)
    calc = QuadraticCalculator(idx, atoms.positions[idx] + 0.05, k)
    h = finite_difference_hessian(atoms, calc, idx, delta=0.01)
    np.testing.assert_allclose(h, k, atol=1e-8)


@pytest.fixture(scope="module")
def o_on_pt():
    slab = fcc111("Pt", (2, 2, 3), vacuum=8.0)
    add_adsorbate(slab, "O", 1.2, "fcc")
    slab = convert_ase_tags(slab)
    slab.calc = EMT()
    BFGS(slab, logfile=None).run(fmax=0.01, steps=200)
    slab.calc = None
    return slab


def test_hessian_and_modes_match_ase_vibrations(o_on_pt, tmp_path):
    o = len(o_on_pt) - 1
    h = finite_difference_hessian(o_on_pt, EMT(), [o])
    work = o_on_pt.copy()
    work.calc = EMT()
    vib = Vibrations(work, indices=[o], delta=0.01, nfree=2, name=str(tmp_path / "vib"))
    vib.run()
    data = vib.get_vibrations()
    np.testing.assert_allclose(h, data.get_hessian_2d(), atol=1e-6)
    ours = vibrational_analysis(h, o_on_pt.get_masses()[[o]])
    np.testing.assert_allclose(ours.energies, np.sort(data.get_energies().real), atol=1e-6)
    assert ours.n_imaginary == 0


@pytest.mark.parametrize("temperature", [0.0, 300.0, 600.0, 1200.0])
def test_free_energy_matches_harmonic_thermo(temperature):
    energies = [0.02, 0.035, 0.05, 0.11, 0.2, 0.38]
    ours = harmonic_free_energy(energies, temperature)
    if temperature == 0:
        assert ours == pytest.approx(0.5 * sum(energies), rel=1e-12)
        return
    ref = HarmonicThermo(energies, potentialenergy=0.0).get_helmholtz_energy(temperature, verbose=False)
    assert ours == pytest.approx(ref, abs=1e-10)


def test_floor_and_imaginary_modes():
    rng = np.random.default_rng(1)
    masses = [16.0, 1.0]
    q, _ = np.linalg.qr(rng.standard_normal((6, 6)))
    # target mode energies (eV); one imaginary (negative), one soft
    target = np.array([-0.03, 0.004, 0.02, 0.05, 0.1, 0.4])
    s = units._hbar * 1e10 / np.sqrt(units._e * units._amu)
    mu = np.sign(target) * (target / s) ** 2
    m_half = np.repeat(np.sqrt(masses), 3)
    hessian = np.outer(m_half, m_half) * (q @ np.diag(mu) @ q.T)
    vib = vibrational_analysis(hessian, masses, floor=0.012)
    np.testing.assert_allclose(vib.energies, target, atol=1e-9)
    assert (vib.n_imaginary, vib.n_soft, vib.is_minimum) == (1, 1, False)
    clipped = [0.012, 0.012, 0.02, 0.05, 0.1, 0.4]
    ref = HarmonicThermo(clipped, potentialenergy=0.0).get_helmholtz_energy(600.0, verbose=False)
    assert harmonic_free_energy(vib, 600.0) == pytest.approx(ref, abs=1e-10)


def test_boltzmann_probabilities_closed_form():
    t = 600.0
    kt = units.kB * t
    p = boltzmann_probabilities([0.0, 0.1, 0.05], [1, 3, 2], t)
    w = np.array([1.0, 3 * np.exp(-0.1 / kt), 2 * np.exp(-0.05 / kt)])
    np.testing.assert_allclose(p, w / w.sum(), rtol=1e-12)
    # a 0.1 eV difference at 300 K is a ~50:1 population ratio
    p300 = boltzmann_probabilities([0.0, 0.1], None, 300.0)
    assert p300[0] / p300[1] == pytest.approx(np.exp(0.1 / (units.kB * 300.0)))
    assert 40 < p300[0] / p300[1] < 60
    assert boltzmann_probabilities([0.0, 0.1], None, 1200.0)[1] > p300[1]
    with pytest.raises(ValueError):
        boltzmann_probabilities([0.0], [0], 300.0)


def _with(make, size, adsorbate, site):
    slab = make(size)
    add_adsorbate(slab, adsorbate, 1.5, site)
    return convert_ase_tags(slab)


@pytest.mark.parametrize(
    "make, size, counts",
    [
        # hand counts: ontop = surface atoms; bridge = 3 (fcc111) or 2 (fcc100) per surface atom;
        # fcc and hcp hollows one each per surface atom; fcc(100) hollows one per surface atom.
        (lambda s: fcc111("Pt", s, vacuum=8.0), (2, 2, 3), {"ontop": 4, "bridge": 12, "fcc": 4, "hcp": 4}),
        (lambda s: fcc111("Pt", s, vacuum=8.0), (3, 3, 3), {"ontop": 9, "bridge": 27, "fcc": 9, "hcp": 9}),
        (lambda s: fcc100("Cu", s, vacuum=8.0), (2, 2, 3), {"ontop": 4, "bridge": 8, "hollow": 4}),
    ],
)
def test_multiplicity_matches_hand_counts(make, size, counts):
    bare = convert_ase_tags(make(size))
    images = symmetry_images(bare)
    for site, expected in counts.items():
        system = _with(make, size, "O", site)
        assert site_multiplicity(system, bare, images=images)[0] == expected, site


def test_orientational_degeneracy_is_counted():
    make = lambda s: fcc111("Pt", s, vacuum=8.0)
    bare = convert_ase_tags(make((2, 2, 3)))
    upright = molecule("OH")
    upright.rotate(180, "x")  # O down, H straight up: C3v-symmetric ontop
    tilted = molecule("OH")
    tilted.rotate(145, "x")  # H tilted 35° towards a neighbour: 3 orientations per top site
    assert site_multiplicity(_with(make, (2, 2, 3), upright, "ontop"), bare)[0] == 4
    assert site_multiplicity(_with(make, (2, 2, 3), tilted, "ontop"), bare)[0] == 12


def test_symmetry_images_map_the_slab_onto_itself():
    bare = convert_ase_tags(fcc111("Pt", (2, 2, 3), vacuum=8.0))
    system = _with(lambda s: fcc111("Pt", s, vacuum=8.0), (2, 2, 3), "O", "fcc")
    images = symmetry_images(bare)
    assert len(images) == 24  # p3m1: 6 point operations × 4 cell translations
    for image in images:
        moved = image.apply(system, bare)
        np.testing.assert_allclose(moved.positions[: len(bare)], bare.positions, atol=1e-9)
        assert np.linalg.det(image.linear) == pytest.approx(1.0, abs=1e-9) or \
            np.linalg.det(image.linear) == pytest.approx(-1.0, abs=1e-9)
        np.testing.assert_allclose(image.linear @ [0, 0, 1], [0, 0, 1], atol=1e-9)
