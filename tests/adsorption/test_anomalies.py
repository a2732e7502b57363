"""AdsorbML anomaly flags on hand-made structures."""

from __future__ import annotations

import numpy as np
import pytest
from ase.build import fcc111
from ase.calculators.emt import EMT
from ase.optimize import BFGS

from digmat.adsorption import convert_ase_tags, get_adsorbate
from digmat.adsorption.anomalies import ANOMALIES, detect_anomalies
from digmat.adsorption.placement import place_adsorbate


@pytest.fixture(scope="module")
def slab():
    return convert_ase_tags(fcc111("Pt", (3, 3, 3), vacuum=8.0))


def _fcc_point(slab):
    info = slab.info["adsorbate_info"]
    xy = np.asarray(info["sites"]["fcc"]) @ info["cell"]
    return np.array([xy[0], xy[1], 0.0])


@pytest.fixture(scope="module")
def relaxed_o(slab):
    initial = place_adsorbate(slab, get_adsorbate("O"), _fcc_point(slab))
    relaxed = initial.copy()
    relaxed.calc = EMT()
    BFGS(relaxed, logfile=None).run(fmax=0.05, steps=200)
    relaxed.calc = None
    return initial, relaxed


def test_clean_relaxation_has_no_anomaly(relaxed_o):
    flags = detect_anomalies(*relaxed_o)
    assert not flags.any and flags.names() == []


def test_desorbed(relaxed_o):
    initial, relaxed = relaxed_o
    moved = relaxed.copy()
    moved.positions[-1, 2] += 4.0
    assert detect_anomalies(initial, moved).names() == ["desorbed"]


def test_surface_changed(relaxed_o):
    initial, relaxed = relaxed_o
    moved = relaxed.copy()
    far = int(np.argmax(np.linalg.norm(moved.positions[:-1, :2] - moved.positions[-1, :2], axis=1)
                        + 100 * (moved.get_tags()[:-1] != 1)))
    far = int(np.flatnonzero(moved.get_tags() == 1)[0]) if moved.get_tags()[far] != 1 else far
    moved.positions[far, 2] += 2.5  # a surface atom pulled out of the surface
    assert "surface_changed" in detect_anomalies(initial, moved).names()
    assert "desorbed" not in detect_anomalies(initial, moved).names()


def test_surface_change_cutoffs(relaxed_o):
    """AdsorbML's 1.5 × cutoff sits just inside the in-plane √3 shell (4.80 Å on Pt(111)):
    a 0.2 Å shift of one surface atom crosses it; digmat's default (first shell) does not."""
    initial, relaxed = relaxed_o
    tags = relaxed.get_tags()
    top = np.flatnonzero(tags == 1)
    a, b = top[0], top[1:][np.argsort(np.abs(relaxed.get_distances(top[0], top[1:], mic=True) - 4.80))[0]]
    assert relaxed.get_distance(a, b, mic=True) == pytest.approx(4.80, abs=0.05)
    moved = relaxed.copy()
    vec = relaxed.get_distance(a, b, mic=True, vector=True)
    moved.positions[a] += 0.2 * vec / np.linalg.norm(vec)
    assert detect_anomalies(initial, moved, surface_mult=1.5).names() == ["surface_changed"]
    assert detect_anomalies(initial, moved).names() == []


def test_intercalated(relaxed_o, slab):
    initial, relaxed = relaxed_o
    moved = relaxed.copy()
    tags = moved.get_tags()
    z1 = moved.positions[tags == 1, 2].mean()
    below = moved.positions[(tags == 0), 2]
    z2 = below[below < z1 - 0.5].max()
    moved.positions[-1, 2] = 0.5 * (z1 + z2)  # between the first and second layers
    assert detect_anomalies(initial, moved).intercalated


def test_dissociated(slab):
    oh = get_adsorbate("OH")
    initial = place_adsorbate(slab, oh, _fcc_point(slab))
    moved = initial.copy()
    h = int(np.flatnonzero(moved.numbers == 1)[0])
    moved.positions[h, :2] += moved.cell.array[0, :2] / 3.0  # H carried ~2.8 Å sideways
    moved.positions[h, 2] -= 0.8
    assert detect_anomalies(initial, moved).names() == ["dissociated"]
    assert detect_anomalies(initial, initial).names() == []


def test_all_names_and_errors(relaxed_o):
    initial, relaxed = relaxed_o
    assert ANOMALIES == ("desorbed", "dissociated", "surface_changed", "intercalated")
    with pytest.raises(ValueError, match="same atoms"):
        detect_anomalies(initial, relaxed[:-1])
    bare = initial.copy()
    bare.set_tags(np.where(bare.get_tags() == 2, 1, bare.get_tags()))
    with pytest.raises(ValueError, match="no adsorbate"):
        detect_anomalies(bare, bare)
