"""Weighing binding modes with a calculator, on a hand-made case checked against ASE and scipy.

A one-atom "ligand" over a fixed "pocket" of a Lennard-Jones triangle and a square far apart:
two distinct minima of different depth (above the square's centre and above the triangle's),
plus their mirror images below.  The relaxed minima are checked against scipy's minimiser of
the same energy, the vibrational free energies against ASE's own Vibrations + HarmonicThermo,
and the populations against exp(−G/k_B T) written out by hand.
"""

import numpy as np
import pytest
from ase import Atoms, units
from ase.calculators.lj import LennardJones
from ase.constraints import FixAtoms

from digmat.ligand.mode_energies import (ModeEnergyConfig, ModeWeights, RelaxedMode, check_ligand_calculator,
                                         reweight_samples, weigh_modes)

TEMPERATURE = 300.0


def _complex() -> Atoms:
    triangle = [[0, 0, 0], [2.6, 0, 0], [1.3, 2.25, 0]]
    square = [[20, 0, 0], [22.6, 0, 0], [20, 2.6, 0], [22.6, 2.6, 0]]
    pocket = Atoms("C7", positions=triangle + square)
    atoms = pocket + Atoms("C", positions=[[21.3, 1.3, 2.0]])
    atoms.set_constraint(FixAtoms(indices=range(7)))
    atoms.info["pocket_atoms"] = 7
    return atoms


def _calc():
    return LennardJones(epsilon=0.3, sigma=2.0, rc=8.0, smooth=True)


def _energy(atoms: Atoms, x) -> float:
    work = atoms.copy()
    work.positions[-1] = x
    work.calc = _calc()
    return work.get_potential_energy()


@pytest.fixture(scope="module")
def weighed():
    atoms = _complex()
    before = atoms.positions.copy()
    starts = [np.array([[[21.5, 1.1, 1.8]], [[21.0, 1.6, 2.3]]]),  # square, top (two starts)
              np.array([[[1.2, 0.9, 1.5]]]),                       # triangle, top
              np.array([[[21.2, 1.4, 2.2]]])]                      # square, top again
    result = weigh_modes(atoms, starts, [0.5, 0.3, 0.2], _calc(), temperature=TEMPERATURE,
                         config=ModeEnergyConfig(fmax=1e-4, steps=2000), reference=np.array([[21.3, 1.3, -1.8]]))
    assert np.array_equal(atoms.positions, before) and len(atoms) == 8  # input untouched
    return atoms, result


def test_minima_match_scipy(weighed):
    from scipy.optimize import minimize

    atoms, result = weighed
    square, triangle, again = result.modes
    for mode, start in ((square, [21.5, 1.1, 1.8]), (triangle, [1.2, 0.9, 1.5])):
        best = minimize(lambda x: _energy(atoms, x), start, method="Nelder-Mead",
                        options={"xatol": 1e-6, "fatol": 1e-10, "maxiter": 4000})
        assert np.allclose(mode.positions[0], best.x, atol=2e-3)
        assert mode.converged and mode.n_imaginary == 0
    e_sq, e_tri = (_energy(atoms, m.positions[0]) for m in (square, triangle))
    assert e_sq < e_tri  # four neighbours bind more than three
    assert triangle.energy == pytest.approx((e_tri - e_sq) / (units.kcal / units.mol), abs=1e-3)
    assert again.same_as == 1 and again.population == 0.0 and again.free_energy == square.free_energy


def test_free_energies_and_populations_match_ase_harmonic_thermo(weighed, tmp_path):
    from ase.thermochemistry import HarmonicThermo
    from ase.vibrations import Vibrations

    atoms, result = weighed
    g = []
    for k, mode in enumerate(result.modes[:2]):
        work = atoms.copy()
        work.positions[-1] = mode.positions[0]
        work.calc = _calc()
        vib = Vibrations(work, indices=[7], delta=0.01, name=str(tmp_path / f"vib{k}"))
        vib.run()
        eps = np.real(vib.get_energies())
        assert (eps > 0.012).all()  # above digmat's floor: the comparison is not about the floor
        thermo = HarmonicThermo(eps, potentialenergy=work.get_potential_energy())
        g.append(thermo.get_helmholtz_energy(TEMPERATURE, verbose=False))
    kcal = units.kcal / units.mol
    assert result.modes[1].free_energy == pytest.approx((g[1] - g[0]) / kcal, abs=2e-3)
    p = np.exp(-(np.array(g) - min(g)) / (units.kB * TEMPERATURE))
    assert [m.population for m in result.modes[:2]] == pytest.approx(list(p / p.sum()), abs=1e-4)
    assert sum(m.population for m in result.modes) == pytest.approx(1.0)


def test_reference_mirror_minimum_has_the_same_free_energy(weighed):
    _, result = weighed
    ref = result.reference
    assert ref["same_as"] is None  # the mirror image below the square is another minimum ...
    assert ref["free_energy"] == pytest.approx(0.0, abs=2e-3)  # ... of the same depth and curvature
    assert result.model_coverage == pytest.approx(1.0)
    assert result.calls > 3 * 6  # relaxations + three Hessians (two modes, the reference)


def test_minima_above_the_harmonic_window_get_no_hessian_and_no_population(weighed):
    atoms, full = weighed
    gap = full.modes[1].energy  # kcal/mol, triangle above square
    starts = [np.array([[[21.5, 1.1, 1.8]]]), np.array([[[1.2, 0.9, 1.5]]])]
    config = ModeEnergyConfig(fmax=1e-4, steps=2000, harmonic_window=gap / 2)
    result = weigh_modes(atoms, starts, [0.6, 0.4], _calc(), temperature=TEMPERATURE, config=config)
    square, triangle = result.modes
    assert square.harmonic and not triangle.harmonic and triangle.n_imaginary is None and triangle.free_energy is None
    assert (square.population, triangle.population) == (1.0, 0.0)
    assert triangle.energy == pytest.approx(gap, abs=2e-3)
    wide = weigh_modes(atoms, starts, [0.6, 0.4], _calc(), temperature=TEMPERATURE,
                       config=ModeEnergyConfig(fmax=1e-4, steps=2000, harmonic_window=2 * gap))
    assert wide.modes[1].harmonic and wide.calls == result.calls + 6  # one more Hessian of the 1-atom ligand
    assert [m.population for m in wide.modes] == pytest.approx([m.population for m in full.modes[:2]], abs=1e-6)


def _mode(k, population, same_as=None):
    return RelaxedMode(mode=k, model_population=0.0, positions=np.zeros((1, 3)), energy=0.0, free_energy=0.0,
                       population=population, relaxation_rmsd=0.0, converged=True, steps=1, same_as=same_as)


def test_reweight_samples_gives_each_mode_its_minimum_population():
    # modes 1 and 3 reached one minimum (population 0.8), mode 2 another (0.2); mode 4 (label 3) and
    # label -1 were not relaxed
    weighed = ModeWeights([_mode(1, 0.8), _mode(2, 0.2), _mode(3, 0.0, same_as=1)], 300.0, "test", 0, 0.0, 0, 1.0, True)
    labels = np.array([0, 0, 1, 1, 1, 2, 3, -1])
    w = np.array([1.0, 3.0, 0.5, 0.5, 1.0, 4.0, 7.0, 2.0])
    out = reweight_samples(labels, w, weighed)
    assert out.sum() == pytest.approx(1.0) and (out[6:] == 0).all()
    # the 0.8 is shared by modes 1 and 3 in proportion to their own weight (4 : 4)
    assert out[labels == 0].sum() == pytest.approx(0.4) and out[labels == 2].sum() == pytest.approx(0.4)
    assert out[labels == 1].sum() == pytest.approx(0.2)
    assert out[1] / out[0] == pytest.approx(3.0) and out[4] / out[2] == pytest.approx(2.0)  # shapes kept
    with pytest.raises(ValueError, match="one label"):
        reweight_samples(labels[:3], w, weighed)
    with pytest.raises(ValueError, match="no sample"):
        reweight_samples(np.full(8, 3), w, weighed)


def test_bad_input_is_refused():
    atoms = _complex()
    with pytest.raises(ValueError, match="one non-empty"):
        weigh_modes(atoms, [np.ones((1, 2, 3))], [1.0], _calc(), temperature=300.0)
    with pytest.raises(ValueError, match="population >="):
        weigh_modes(atoms, [np.ones((1, 1, 3))], [0.001], _calc(), temperature=300.0)
    with pytest.raises(ValueError, match="temperature"):
        weigh_modes(atoms, [np.ones((1, 1, 3))], [1.0], _calc(), temperature=0.0)
    with pytest.raises(ValueError, match="unknown ligand calculator 'xtb'"):
        check_ligand_calculator("xtb")
    with pytest.raises(ValueError, match="max_modes"):
        ModeEnergyConfig(max_modes=0)
    with pytest.raises(ValueError, match="harmonic_window"):
        ModeEnergyConfig(harmonic_window=-1.0)


def test_a_mode_whose_relaxations_all_changed_their_bonding_weighs_nothing(monkeypatch):
    import digmat.ligand.mode_energies as mode_energies

    starts = [np.array([[[21.5, 1.1, 1.8]], [[21.0, 1.6, 2.3]]]), np.array([[[1.2, 0.9, 1.5]]])]
    # relaxations in call order: the square's two starts, the triangle's; flag both of the square's
    monkeypatch.setattr(mode_energies, "bond_anomalies", lambda x, bonds: np.arange(len(x)) < 2)
    result = weigh_modes(_complex(), starts, [0.6, 0.4], _calc(), temperature=TEMPERATURE,
                         config=ModeEnergyConfig(fmax=1e-4, steps=2000), bonds=[[0, 0]])
    square, triangle = result.modes
    assert square.anomalous and square.population == 0.0 and square.free_energy is None
    assert not triangle.anomalous and triangle.population == 1.0 and triangle.energy == 0.0
    # one of the two flagged: the mode keeps the other start's minimum
    monkeypatch.setattr(mode_energies, "bond_anomalies", lambda x, bonds: np.arange(len(x)) == 0)
    kept = weigh_modes(_complex(), starts, [0.6, 0.4], _calc(), temperature=TEMPERATURE,
                       config=ModeEnergyConfig(fmax=1e-4, steps=2000), bonds=[[0, 0]])
    assert not kept.modes[0].anomalous and kept.modes[0].population > 0.99


def test_relax_ligand_with_free_pocket_atoms_matches_ase_bfgs():
    from ase.constraints import FixAtoms
    from ase.optimize import BFGS

    from digmat.ligand.physics import relax_ligand

    atoms = _complex()
    atoms.positions[4] += [0.3, -0.2, 0.4]  # a square atom off its place, free to relax with the ligand
    before = atoms.positions.copy()
    relaxed, info = relax_ligand(atoms, _calc(), fmax=1e-4, steps=2000, free=[4])
    assert info["converged"] and np.array_equal(atoms.positions, before)  # input untouched
    fixed = [i for i in range(7) if i != 4]
    assert np.allclose(relaxed.positions[fixed], before[fixed])  # the rest of the pocket did not move
    assert np.linalg.norm(relaxed.positions[4] - before[4]) > 0.05
    # ASE's own optimiser with the same atoms free reaches the same minimum
    ref = atoms.copy()
    ref.set_constraint(FixAtoms(indices=fixed))
    ref.calc = _calc()
    BFGS(ref, logfile=None).run(fmax=1e-4, steps=2000)
    assert info["energy"] == pytest.approx(ref.get_potential_energy(), abs=1e-6)
    assert np.allclose(relaxed.positions, ref.positions, atol=1e-3)
    only_ligand, _ = relax_ligand(atoms, _calc(), fmax=1e-4, steps=2000)
    assert np.allclose(only_ligand.positions[:7], before[:7]) and info["energy"] <= _energy(only_ligand, only_ligand.positions[-1]) + 1e-9
    with pytest.raises(ValueError, match="pocket atoms"):
        relax_ligand(atoms, _calc(), free=[7])
