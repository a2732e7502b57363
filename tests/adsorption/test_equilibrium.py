"""Equilibrium samples: basin frequencies, harmonic covariance, symmetry copies, LMDB datasets.

Independent references: the Boltzmann probabilities of the basins (counted
frequencies within 4 standard errors), ``k_B T K⁻¹`` of an analytic quadratic
energy, the hand-counted copies of an fcc hollow, and the records read back
through :class:`digmat.data.LmdbDataset`.
"""

from __future__ import annotations

import numpy as np
import pytest
from ase import units
from ase.build import fcc111
from ase.calculators.calculator import Calculator, all_changes
from ase.geometry import find_mic

from digmat.adsorption import classify_site, convert_ase_tags
from digmat.adsorption.equilibrium import sample_equilibrium, write_equilibrium_dataset
from digmat.adsorption.reference import ReferenceResult, reference_search
from digmat.data import LmdbDataset


class Tether(Calculator):
    """E = ½ (x − x0)ᵀ K (x − x0) on the last atom (the adsorbate), eV and Å."""

    implemented_properties = ["energy", "forces"]

    def __init__(self, x0, stiffness):
        super().__init__()
        self.x0, self.k = np.asarray(x0, float), np.asarray(stiffness, float)

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        d = self.atoms.positions[-1] - self.x0
        forces = np.zeros((len(self.atoms), 3))
        forces[-1] = -self.k @ d
        self.results = {"energy": 0.5 * float(d @ self.k @ d), "forces": forces}


@pytest.fixture(scope="module")
def slab():
    return convert_ase_tags(fcc111("Pt", (2, 2, 3), vacuum=8.0))


@pytest.fixture(scope="module")
def emt_result(slab, tmp_path_factory):
    res = reference_search(slab, "O", "emt", num_random=8, seed=0)
    path = res.to_json(tmp_path_factory.mktemp("ref") / "ref.json")
    res = ReferenceResult.from_json(path)
    # make every stationary point a basin with distinct energies, so that all four
    # kinds have sizeable, different probabilities at 1200 K
    for m, shift in zip(sorted(res.minima, key=lambda m: m.site_kind), [0.08, 0.0, 0.04, 0.15, 0.1]):
        m.energy = res.minima[0].energy + shift
        m.flags = []
        m.vib_energies = np.abs(m.vib_energies)
        w, v = np.linalg.eigh(m.hessian)
        m.hessian = (v * np.abs(w)) @ v.T
    return res


def test_basin_frequencies_match_boltzmann(emt_result):
    t, n = 1200.0, 4000
    p = emt_result.probabilities(t)
    assert (p > 0.05).sum() >= 3
    samples = sample_equilibrium(emt_result, t, n, seed=7)
    assert len(samples) == n
    counts = np.bincount([a.info["basin"] for a in samples], minlength=len(p))
    se = np.sqrt(p * (1 - p) / n)
    assert np.all(np.abs(counts / n - p) <= 4 * se + 1e-12), (counts / n, p)
    for a in samples[:50]:
        assert a.info["temperature"] == t and a.info["weight"] == 1.0
        assert a.info["site_kind"] == emt_result.minima[a.info["basin"]].site_kind
        assert a.info["probability"] == pytest.approx(p[a.info["basin"]])
    # at 300 K the lowest basin dominates
    p300 = emt_result.probabilities(300.0)
    assert p300.max() > p.max()


def test_min_per_basin_weights_restore_the_probabilities(emt_result):
    t = 600.0
    p = emt_result.probabilities(t)
    samples = sample_equilibrium(emt_result, t, 300, seed=3, min_per_basin=40)
    basins = np.array([a.info["basin"] for a in samples])
    weights = np.array([a.info["weight"] for a in samples])
    for i in np.flatnonzero(p > 0):
        assert (basins == i).sum() >= 40
        assert weights[basins == i].sum() / weights.sum() == pytest.approx(p[i], abs=1e-12)
    assert weights.sum() == pytest.approx(len(samples))


def test_samples_keep_tags_constraints_and_stay_in_the_cell(emt_result):
    samples = sample_equilibrium(emt_result, 1200.0, 200, seed=1)
    ref = emt_result.minima[0].atoms
    fixed = sorted(ref.constraints[0].get_indices().tolist())
    for a in samples:
        assert (a.get_tags() == ref.get_tags()).all()
        assert sorted(a.constraints[0].get_indices().tolist()) == fixed
        frac = a.get_scaled_positions(wrap=False)
        assert np.all((frac[:, :2] >= -1e-6) & (frac[:, :2] < 1))  # ase wraps with eps = 1e-7
        moved, _ = find_mic(a.positions[fixed] - emt_result.slab.positions[fixed], a.cell, pbc=a.pbc)
        np.testing.assert_allclose(moved, 0.0, atol=1e-9)  # fixed atoms stay (up to a lattice vector)
        assert a.get_forces().shape == (len(a), 3)


def test_symmetry_copies_are_all_visited(emt_result):
    fcc = next(i for i, m in enumerate(emt_result.minima) if m.site_kind == "hollow-fcc")
    samples = [a for a in sample_equilibrium(emt_result, 300.0, 1200, seed=5) if a.info["basin"] == fcc]
    sites = [tuple(sorted(classify_site(a, len(a) - 1).binding_atoms)) for a in samples]
    sites = [s for s, a in zip(sites, samples) if classify_site(a, len(a) - 1).kind == "hollow-fcc"]
    labels, counts = np.unique(np.array(sites), axis=0, return_counts=True)
    assert len(labels) == emt_result.minima[fcc].multiplicity == 4
    assert counts.min() > 0.15 * len(sites)  # roughly uniform over the 4 copies


def test_harmonic_covariance_is_kT_over_K(slab):
    rng = np.random.default_rng(2)
    q, _ = np.linalg.qr(rng.standard_normal((3, 3)))
    k = q @ np.diag([2.5, 4.0, 7.0]) @ q.T
    top = slab.positions[:, 2].max()
    x0 = np.array([2.2, 1.9, top + 1.3])
    res = reference_search(slab, "O", Tether(x0, k), num_random=2, heuristic=False,
                           relax_surface=False, fmax=0.001)
    assert len(res.minima) == 1
    m = res.minima[0]
    np.testing.assert_allclose(m.hessian, k, atol=1e-6)
    t, n = 600.0, 8000
    samples = sample_equilibrium(res, t, n, seed=11, symmetrize=False)
    centre = m.atoms.positions[-1]
    d, _ = find_mic(np.array([a.positions[-1] for a in samples]) - centre, slab.cell, pbc=slab.pbc)
    cov = np.cov(d.T)
    target = units.kB * t * np.linalg.inv(k)
    # sampling error of a covariance entry: sqrt((S_ii S_jj + S_ij²) / n)
    se = np.sqrt((np.outer(np.diag(target), np.diag(target)) + target**2) / n)
    assert np.all(np.abs(cov - target) < 5 * se)
    assert np.all(np.abs(d.mean(axis=0)) < 5 * np.sqrt(np.diag(target) / n))
    # harmonic energies: E0 + ½ δᵀKδ, mean (3/2) k_B T
    e = np.array([a.get_potential_energy() for a in samples]) - m.energy
    assert e.mean() == pytest.approx(1.5 * units.kB * t, rel=0.03)


def test_dataset_round_trip_and_determinism(emt_result, tmp_path):
    temps = [300.0, 600.0, 1200.0]
    n = write_equilibrium_dataset([emt_result], temps, tmp_path / "eq.lmdb", 20, seed=4)
    assert n == 60
    with LmdbDataset(tmp_path / "eq.lmdb") as ds:
        assert len(ds) == 60
        rec = ds[0]
        for key in ("pos", "atomic_numbers", "cell", "tags", "fixed", "natoms", "sid", "energy",
                    "forces", "temperature", "weight", "basin"):
            assert key in rec, key
        assert tuple(rec.cell.shape) == (1, 3, 3) and rec.natoms == len(emt_result.slab) + 1
        assert sorted({ds[i].temperature for i in range(len(ds))}) == temps
        first = ds.to_atoms(0)
    assert first.info["sid"] == emt_result.system_id and first.info["energy_source"] == "harmonic"
    write_equilibrium_dataset([emt_result], temps, tmp_path / "again.lmdb", 20, seed=4)
    with LmdbDataset(tmp_path / "again.lmdb", return_type="dict") as a, \
            LmdbDataset(tmp_path / "eq.lmdb", return_type="dict") as b:
        for i in range(len(a)):  # pickles are not byte-stable; their contents are
            ra, rb = a[i], b[i]
            assert ra.keys() == rb.keys()
            for key in ra:
                np.testing.assert_array_equal(np.asarray(ra[key]), np.asarray(rb[key]))
    with pytest.raises(FileExistsError):
        write_equilibrium_dataset([emt_result], temps, tmp_path / "eq.lmdb", 5)


def test_evaluated_energies_and_errors(emt_result):
    samples = sample_equilibrium(emt_result, 600.0, 4, seed=0, calculator="emt")
    assert all(a.info["energy_source"] == "emt" for a in samples)
    from ase.calculators.emt import EMT

    a = samples[0].copy()
    a.calc = EMT()
    assert samples[0].get_potential_energy() == pytest.approx(a.get_potential_energy())
    with pytest.raises(ValueError, match="method"):
        sample_equilibrium(emt_result, 600.0, 4, method="langevin")
    with pytest.raises(ValueError, match="temperature"):
        sample_equilibrium(emt_result, 0.0, 4)
    with pytest.raises(ValueError, match="min_per_basin"):
        sample_equilibrium(emt_result, 600.0, 3, min_per_basin=2)
