"""Mining minima: every distinct minimum counted, halves compared, resumable — on a hand-made case.

The one-atom "ligand" over a Lennard-Jones triangle and square of ``test_mode_energies``: four
minima (above and below each polygon; the two of a polygon are mirror images with the same free
energy). Mode 0 is the square, mode 1 the triangle. The free energies are checked against ASE's
own Vibrations + HarmonicThermo, and the populations against the harmonic superposition written
out by hand: the square's mode holds both of its mirror minima.
"""

import numpy as np
import pytest
from ase import units

from digmat.ligand.mining import mine_minima, minima_populations
from digmat.ligand.mode_energies import ModeEnergyConfig
from tests.ligand.test_mode_energies import _calc, _complex

TEMPERATURE = 3000.0  # K: hot enough that the triangle's minima (6.9 kcal/mol up) hold a visible share

CONFIG = ModeEnergyConfig(fmax=1e-4, steps=2000, harmonic_window=50.0)
STARTS = np.array([[[21.5, 1.1, 1.8]], [[21.0, 1.6, -2.3]], [[21.2, 1.4, 2.2]],   # square: top, bottom, top
                   [[1.2, 0.9, 1.5]], [[1.4, 0.6, -1.7]]])                         # triangle: top, bottom
MODES = [0, 0, 0, 1, 1]
HALVES = [0, 0, 0, 0, 1]  # half 1 only reached the triangle's lower minimum: not converged


@pytest.fixture(scope="module")
def mined(tmp_path_factory):
    atoms = _complex()
    before = atoms.positions.copy()
    cache = tmp_path_factory.mktemp("mining") / "cache.npz"
    result = mine_minima(atoms, STARTS, MODES, HALVES, _calc, temperature=TEMPERATURE, config=CONFIG, cache=cache)
    assert np.array_equal(atoms.positions, before)  # input untouched
    return atoms, result, cache


def _helmholtz(atoms, x, tmp_path, name):
    from ase.thermochemistry import HarmonicThermo
    from ase.vibrations import Vibrations

    work = atoms.copy()
    work.positions[-1] = x
    work.calc = _calc()
    vib = Vibrations(work, indices=[7], delta=0.01, name=str(tmp_path / name))
    vib.run()
    thermo = HarmonicThermo(np.real(vib.get_energies()), potentialenergy=work.get_potential_energy())
    return thermo.get_helmholtz_energy(TEMPERATURE, verbose=False)


def test_four_distinct_minima_each_in_its_starts_mode(mined):
    _, result, _ = mined
    assert len(result.energy) == 4 and sorted(result.starts) == [1, 1, 1, 2]
    assert sorted(result.mode.tolist()) == [0, 0, 1, 1]
    assert result.energy[0] == 0.0 and (np.diff(result.energy) >= -1e-9).all()
    # the two top starts over the square reach one minimum; each mirror pair has one energy
    assert result.start_minimum[0] == result.start_minimum[2] != result.start_minimum[1]
    sq = result.mode == 0
    assert np.ptp(result.energy[sq]) < 1e-3 and np.ptp(result.energy[~sq]) < 1e-3
    assert (result.n_imaginary == 0).all()


def test_populations_are_the_harmonic_superposition_by_ase(mined, tmp_path):
    atoms, result, _ = mined
    g = np.array([_helmholtz(atoms, result.positions[i, 0], tmp_path, f"v{i}") for i in range(4)])
    kcal = units.kcal / units.mol
    assert result.free_energy == pytest.approx((g - g.min()) / kcal, abs=2e-3)
    w = np.exp(-(g - g.min()) / (units.kB * TEMPERATURE))
    square = w[result.mode == 0].sum() / w.sum()
    assert result.populations == pytest.approx([square, 1 - square], abs=1e-4)
    assert 0.6 < square < 0.9  # the deeper square dominates, the triangle's two minima are not negligible


def test_each_half_counts_only_the_minima_it_reached(mined):
    _, result, _ = mined
    # half 0 reached both square minima and the triangle's top one, half 1 the triangle's lower one only
    w = np.exp(-result.free_energy / (units.kB * TEMPERATURE / (units.kcal / units.mol)))
    for h in (0, 1):
        keep = result.halves[:, h]
        sq = w[keep & (result.mode == 0)].sum() / w[keep].sum()
        assert result.half_populations[h] == pytest.approx([sq, 1 - sq], abs=1e-9)
    assert result.max_half_difference == pytest.approx(abs(result.half_populations[0, 0] - result.half_populations[1, 0]))
    assert result.half_populations[1] == pytest.approx([0.0, 1.0])
    assert result.max_half_difference == pytest.approx(result.half_populations[0, 0])


def test_a_rerun_resumes_from_the_cache_without_calling_the_calculator(mined):
    atoms, result, cache = mined

    def refuse():
        raise AssertionError("the calculator was called although every step is cached")

    again = mine_minima(atoms, STARTS, MODES, HALVES, refuse, temperature=TEMPERATURE, config=CONFIG, cache=cache)
    assert again.populations == pytest.approx(result.populations) and again.calls == result.calls
    # a subset of the starts, in another order: all reused, and the cache keeps the others
    fewer = mine_minima(atoms, STARTS[[2, 0, 3]], [0, 0, 1], [1, 0, 0], refuse, temperature=TEMPERATURE, config=CONFIG,
                        cache=cache)
    assert fewer.start_energy == pytest.approx(result.start_energy[[2, 0, 3]] - result.start_energy[[2, 0, 3]].min())
    assert mine_minima(atoms, STARTS, MODES, HALVES, refuse, temperature=TEMPERATURE, config=CONFIG,
                       cache=cache).populations == pytest.approx(result.populations)
    # one new start: only it is relaxed (plus a Hessian if its relaxation is now its minimum's lowest)
    called = []

    def counting():
        called.append(1)
        return _calc()

    more = np.concatenate([STARTS, [[[21.6, 1.0, -1.9]]]])
    grown = mine_minima(atoms, more, MODES + [0], HALVES + [1], counting, temperature=TEMPERATURE, config=CONFIG, cache=cache)
    assert len(called) in (1, 2) and grown.starts.sum() == 6 and len(grown.energy) == 4
    moved = atoms.copy()
    moved.positions[0, 0] += 0.1
    with pytest.raises(ValueError, match="another pocket"):
        mine_minima(moved, STARTS, MODES, HALVES, refuse, temperature=TEMPERATURE, config=CONFIG, cache=cache)
    with pytest.raises(ValueError, match="1-atom ligand"):
        mine_minima(atoms[:7] + atoms[7:] + atoms[7:], np.concatenate([STARTS, STARTS], 1), MODES, HALVES, refuse,
                    temperature=TEMPERATURE, config=CONFIG, cache=cache)
    with pytest.raises(ValueError, match="free energies at 3000"):
        mine_minima(atoms, STARTS, MODES, HALVES, refuse, temperature=300.0, config=CONFIG, cache=cache)


def test_each_relaxation_records_whether_it_converged(mined, tmp_path):
    atoms, result, cache = mined
    assert result.start_converged.tolist() == [1] * len(STARTS)  # fmax 1e-4 within 2,000 steps
    assert result.as_dict()["unconverged_starts"] == 0
    # two L-BFGS steps cannot reach fmax 1e-4 from these starts: recorded as stopped, not converged
    short = mine_minima(atoms, STARTS[:2], MODES[:2], HALVES[:2], _calc, temperature=TEMPERATURE,
                        config=ModeEnergyConfig(fmax=1e-4, steps=2, harmonic_window=50.0), cache=tmp_path / "short.npz")
    assert short.start_converged.tolist() == [0, 0] and short.as_dict()["unconverged_starts"] == 2
    # a cache written before convergence was recorded still loads: those starts are "unknown" (-1)
    with np.load(cache) as data:
        older = {k: data[k] for k in data.files if k != "converged"}
    np.savez(tmp_path / "older.npz", **older)

    def refuse():
        raise AssertionError("the calculator was called although every step is cached")

    again = mine_minima(atoms, STARTS, MODES, HALVES, refuse, temperature=TEMPERATURE, config=CONFIG,
                        cache=tmp_path / "older.npz")
    assert again.start_converged.tolist() == [-1] * len(STARTS) and again.populations == pytest.approx(result.populations)
    assert again.as_dict()["starts_of_unknown_convergence"] == len(STARTS)


def test_minima_above_the_window_weigh_nothing():
    p, halves = minima_populations([0.0, 1.0, np.nan], [0, 1, 1], [[True, False], [True, True], [False, True]], 3, 300.0)
    kt = 0.0019872 * 300.0
    assert p == pytest.approx([1 / (1 + np.exp(-1 / kt)), np.exp(-1 / kt) / (1 + np.exp(-1 / kt)), 0.0], abs=1e-4)
    assert halves[1] == pytest.approx([0.0, 1.0, 0.0])


@pytest.mark.parametrize("modes, halves, match", [([0, 0, 0, 1, 1], [0, 1, 2, 0, 1], "half"),
                                                  ([0, 0, 0, 1], [0, 1, 1, 0, 1], "one mode")])
def test_bad_input_is_refused_before_any_relaxation(modes, halves, match):
    def refuse():
        raise AssertionError("called")

    with pytest.raises(ValueError, match=match):
        mine_minima(_complex(), STARTS, modes, halves, refuse, temperature=TEMPERATURE, config=CONFIG)


def test_bond_anomalies_flag_a_stretched_bond_against_the_median():
    from digmat.ligand.physics import bond_anomalies

    chain = np.array([[0.0, 0, 0], [1.5, 0, 0], [2.6, 0, 0]])  # C–C 1.5 Å, C–H 1.1 Å
    poses = np.stack([chain + 0.01 * k for k in range(5)])
    poses[3, 2, 0] += 0.25  # a C–H stretched to 1.35 Å (an H on its way to another atom)
    poses[4, 1, 0] += 0.05  # 1.55 / 1.05 Å: within what a force field's own lengths do
    assert bond_anomalies(poses, [[0, 1], [1, 2]]).tolist() == [False, False, False, True, False]
    assert not bond_anomalies(poses[2:4], [[0, 1], [1, 2]]).any()  # two poses: no median to trust


def test_an_anomalous_relaxation_forms_no_minimum(monkeypatch):
    import digmat.ligand.mining as mining

    # flag the first start (the square's upper minimum, reached again by start 2)
    monkeypatch.setattr(mining, "bond_anomalies", lambda x, bonds: np.arange(len(x)) == 0)
    result = mine_minima(_complex(), STARTS, MODES, HALVES, _calc, temperature=TEMPERATURE, config=CONFIG, bonds=[[0, 0]])
    assert result.anomalous.tolist() == [True, False, False, False, False] and result.start_minimum[0] == -1
    assert len(result.energy) == 4 and result.starts.sum() == 4  # start 2 still reaches the upper minimum
    monkeypatch.setattr(mining, "bond_anomalies", lambda x, bonds: np.ones(len(x), bool))
    with pytest.raises(ValueError, match="every relaxation changed"):
        mine_minima(_complex(), STARTS, MODES, HALVES, _calc, temperature=TEMPERATURE, config=CONFIG, bonds=[[0, 0]])


def test_energy_anomalies_flag_a_calculator_failure_far_below_the_median():
    from digmat.ligand.physics import energy_anomalies

    energies = [-120.0, -118.5, -101.0, -95.0, -31000.0]  # kcal/mol; the last: a failed call
    assert energy_anomalies(energies).tolist() == [False, False, False, False, True]
    assert not energy_anomalies([-31000.0, -100.0]).any()  # two energies: no median to trust
