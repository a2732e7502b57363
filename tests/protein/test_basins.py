"""Basin assignment on hand-placed (φ, ψ), populations, intervals and free energies."""

import numpy as np
import pytest

from digmat.protein import BASINS, KB_KCAL, assign_basins, basin_table, free_energies

CANONICAL = {  # literature minima of alanine dipeptide (degrees)
    (-83, 73): "β/C7eq", (-150, 155): "β/C7eq", (-120, -170): "β/C7eq", (-75, 145): "PII",
    (-70, -170): "PII", (-65, -40): "αR", (-90, 0): "αR", (60, 40): "αL/C7ax", (70, -70): "αL/C7ax",
    (75, 170): "αL/C7ax",
}


@pytest.mark.parametrize("point, name", CANONICAL.items())
def test_canonical_minima(point, name):
    assert BASINS[assign_basins(np.array(point))] == name


def test_wrapping_and_shape():
    points = np.array([[[-83 + 360, 73 - 720], [60, 40]]])
    np.testing.assert_array_equal(assign_basins(points), [[0, 3]])


def test_partition_covers_the_torus_once():
    grid = np.stack(np.meshgrid(np.arange(-180, 180, 2.5), np.arange(-180, 180, 2.5), indexing="ij"), -1)
    labels = assign_basins(grid)
    assert set(np.unique(labels)) == {0, 1, 2, 3}
    area = np.bincount(labels.ravel()) / labels.size
    assert area[3] == pytest.approx(0.5)  # φ ≥ 0
    # αR: ψ in [−120, 50) at φ < 0 → 170/360 of the φ < 0 half
    assert area[2] == pytest.approx(0.5 * 170 / 360)


def test_populations_intervals_and_free_energies():
    rng = np.random.default_rng(0)
    truth = np.array([0.5, 0.3, 0.15, 0.05])
    centres = np.array([[-150, 155], [-75, 145], [-65, -40], [60, 40]])
    labels = rng.choice(4, size=4000, p=truth)
    samples = centres[labels] + rng.normal(scale=5, size=(4000, 2))
    table = basin_table(samples, temperature=300.0)
    assert np.all(table.lower <= truth) and np.all(truth <= table.upper)
    assert table.effective_samples == pytest.approx(4000)
    np.testing.assert_allclose(table.free_energy, -KB_KCAL * 300 * np.log(table.populations))
    assert table.relative_free_energy()[0] == 0.0
    rows = table.as_dict()
    assert list(rows) == list(BASINS) and rows["PII"]["ci95"][0] < rows["PII"]["population"]


def test_weights_reweight_and_are_checked():
    samples = np.array([[-150, 155], [60, 40]])
    table = basin_table(samples, 300.0, weights=np.array([1.0, 3.0]))
    np.testing.assert_allclose(table.populations, [0.25, 0, 0, 0.75])
    assert table.effective_samples == pytest.approx(16 / 10)
    assert table.as_dict()["PII"]["free_energy_kcal_mol"] is None
    for bad in ([1.0], [-1.0, 2.0], [0.0, 0.0], [np.nan, 1.0]):
        with pytest.raises(ValueError, match="weights"):
            basin_table(samples, 300.0, weights=np.array(bad))


def test_free_energy_of_a_ratio():
    # p ratio e : 1 at T gives ΔF = k_B T exactly
    f = free_energies(np.array([np.e, 1.0]) / (1 + np.e), 250.0)
    assert f[1] - f[0] == pytest.approx(KB_KCAL * 250.0)
