"""AdsorbML anomaly flags on hand-made structures."""

from __future__ import annotations

import numpy as np
import pytest
from ase.build import fcc111
from ase.calculators.emt import EMT
from ase.optimize import BFGS

from digmat.adsorption import convert_ase_tags, get_adsorbate
from digmat.adsorption.anomalies import ANOMALIES, bond_changes, detect_anomalies
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
    """A bond that stretches between the two cutoffs is relaxation, not a surface change:
    three surface atoms pushed 0.5 Å apart around the adsorbate (Au–Au 2.88 → 3.4 Å under O
    in the hollows of Au(111) with CHGNet) are not flagged; a √3 neighbour (4.80 Å on Pt(111))
    brought into bonding distance is a new bond."""
    initial, relaxed = relaxed_o
    tags = relaxed.get_tags()
    top = np.flatnonzero(tags == 1)
    o = len(relaxed) - 1
    near = top[np.argsort(relaxed.get_distances(o, top, mic=True))[:3]]
    pushed = relaxed.copy()
    for a in near:
        vec = relaxed.get_distance(o, a, mic=True, vector=True)
        vec[2] = 0.0
        pushed.positions[a] += 0.5 * vec / np.linalg.norm(vec)
    stretched = [pushed.get_distance(a, b, mic=True) for a in near for b in near if a < b]
    assert min(stretched) > 3.4  # beyond the single natural cutoff, 3.32 Å for Pt–Pt
    assert detect_anomalies(initial, pushed).names() == []
    assert detect_anomalies(initial, pushed, surface_mult=1.01).names() == ["surface_changed"]

    a = top[0]
    d = relaxed.get_distances(a, top, mic=True)
    b = top[np.argmin(np.abs(d - 4.80))]
    assert relaxed.get_distance(a, b, mic=True) == pytest.approx(4.80, abs=0.05)
    closed = relaxed.copy()
    vec = relaxed.get_distance(a, b, mic=True, vector=True)
    closed.positions[a] += (1.0 - 3.0 / np.linalg.norm(vec)) * vec  # a and b now 3.0 Å apart
    changes = bond_changes(initial[:-1], closed[:-1])
    assert (min(a, b), max(a, b), "formed") in changes
    assert "surface_changed" in detect_anomalies(initial, closed).names()


def _adsorbml_surface_changed(initial, relaxed, mult=1.5):
    """fairchem's DetectTrajAnomaly.has_surface_changed, written from its published rule with
    ASE's NeighborList (skin 0.3 Å) and connectivity matrices."""
    from ase.neighborlist import NeighborList, get_connectivity_matrix, natural_cutoffs

    def conn(atoms, m):
        nl = NeighborList(natural_cutoffs(atoms, mult=m), self_interaction=False, bothways=True)
        nl.update(atoms)
        return get_connectivity_matrix(nl.nl).toarray()

    slab = [i for i, t in enumerate(initial.get_tags()) if t != 2]
    ref, fin = initial[slab], relaxed[slab]
    return bool(1 in conn(fin, 1.0) - conn(ref, mult) or 1 in conn(ref, 1.0) - conn(fin, mult))


def test_surface_change_agrees_with_adsorbml(relaxed_o):
    initial, relaxed = relaxed_o
    rng = np.random.default_rng(0)
    top = np.flatnonzero(relaxed.get_tags() == 1)
    seen = set()
    for scale in (0.1, 0.4, 0.8, 1.5, 2.5):
        for _ in range(6):
            moved = relaxed.copy()
            moved.positions[top] += rng.normal(0.0, scale, (len(top), 3))
            ours = detect_anomalies(initial, moved).surface_changed
            assert ours == _adsorbml_surface_changed(initial, moved), scale
            seen.add(ours)
    assert seen == {True, False}


def test_four_fold_hollow_is_not_intercalated():
    """H in the 4-fold hollow of a (100) surface sits above its four surface neighbours and
    within bonding distance of the second-layer atom below (CHGNet on Pd(100): 0.25 Å above
    the surface, 2.25 Å from that atom): an adsorption site, not intercalation."""
    from ase.build import fcc100

    slab = convert_ase_tags(fcc100("Pd", (3, 3, 4), vacuum=8.0))
    info = slab.info["adsorbate_info"]
    xy = np.asarray(info["sites"]["hollow"]) @ info["cell"]
    initial = place_adsorbate(slab, get_adsorbate("H"), np.array([xy[0], xy[1], 0.0]))
    tags = initial.get_tags()
    z1 = initial.positions[tags == 1, 2].max()
    initial.positions[-1, 2] = z1 + 1.0
    low = initial.copy()
    low.positions[-1, 2] = z1 + 0.25
    below = initial.get_distances(len(low) - 1, np.flatnonzero(tags == 0), mic=True)
    moved_below = low.get_distances(len(low) - 1, np.flatnonzero(tags == 0), mic=True)
    assert moved_below.min() < 2.30 < below.min()  # bonded to the subsurface atom (Pd–H cutoff 2.30 Å)
    assert detect_anomalies(initial, low).names() == []
    sub = low.copy()
    sub.positions[-1, 2] = z1 - 0.9  # the octahedral hole between the first and second layers
    assert detect_anomalies(initial, sub).names() == ["intercalated"]


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
