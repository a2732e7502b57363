"""Adsorbate placements: clearance, orientation, tilt, sites, constraints."""

from __future__ import annotations

import numpy as np
import pytest
from ase.build import fcc100, fcc111
from ase.constraints import FixAtoms
from ase.data import covalent_radii

from digmat.adsorption import classify_site, convert_ase_tags, get_adsorbate
from digmat.adsorption.placement import (
    DEFAULT_GAP,
    heuristic_placements,
    make_placements,
    place_adsorbate,
    random_placements,
)


@pytest.fixture(scope="module")
def pt111():
    return convert_ase_tags(fcc111("Pt", (2, 2, 3), vacuum=8.0))


def _closest(system, n_slab):
    """Smallest (distance − r_i − r_j) over adsorbate–slab pairs, brute force over 5×5 images."""
    cell = system.cell.array
    best = np.inf
    for a in range(n_slab, len(system)):
        for i in range(-2, 3):
            for j in range(-2, 3):
                img = system.positions[:n_slab] + i * cell[0] + j * cell[1]
                d = np.linalg.norm(img - system.positions[a], axis=1)
                gap = d - covalent_radii[system.numbers[a]] - covalent_radii[system.numbers[:n_slab]]
                best = min(best, gap.min())
    return best


@pytest.mark.parametrize("name", ["O", "CO", "OH", "CH3CO"])
def test_clearance_is_exactly_the_gap(pt111, name):
    ads = get_adsorbate(name)
    for system in make_placements(pt111, ads, num_random=6, seed=3):
        assert _closest(system, len(pt111)) == pytest.approx(DEFAULT_GAP, abs=1e-6)


def test_inputs_untouched_and_system_layout(pt111):
    ads = get_adsorbate("OH")
    before_slab, before_ads = pt111.positions.copy(), ads.positions.copy()
    system = place_adsorbate(pt111, ads, pt111.positions[-1])
    np.testing.assert_array_equal(pt111.positions, before_slab)
    np.testing.assert_array_equal(ads.positions, before_ads)
    n = len(pt111)
    np.testing.assert_array_equal(system.positions[:n], pt111.positions)
    assert system.get_tags()[n:].tolist() == [2, 2]
    assert system.info["adsorbate_indices"] == [n, n + 1]
    assert system.get_chemical_symbols()[system.info["binding_indices"][0]] == "O"
    fixed = np.concatenate([c.get_indices() for c in system.constraints if isinstance(c, FixAtoms)])
    assert sorted(fixed.tolist()) == np.flatnonzero(pt111.get_tags() == 0).tolist()
    frozen = place_adsorbate(pt111, ads, pt111.positions[-1], relax_surface=False)
    fixed = frozen.constraints[0].get_indices()
    assert sorted(fixed.tolist()) == np.flatnonzero(pt111.get_tags() != 2).tolist()


def test_molecule_points_away_from_surface(pt111):
    co = get_adsorbate("CO")  # bound through C
    system = place_adsorbate(pt111, co, pt111.positions[-1], angle=40.0)
    n = len(pt111)
    c, o = (system.positions[n + i] for i in (0, 1)) if system.numbers[n] == 6 else (
        system.positions[n + 1], system.positions[n])
    axis = (o - c) / np.linalg.norm(o - c)
    np.testing.assert_allclose(axis, [0, 0, 1], atol=1e-9)
    tilted = place_adsorbate(pt111, co, pt111.positions[-1], tilt=25.0, tilt_azimuth=70.0)
    b = tilted.info["binding_indices"][0]
    other = n if b == n + 1 else n + 1
    v = tilted.positions[other] - tilted.positions[b]
    assert np.degrees(np.arccos(v[2] / np.linalg.norm(v))) == pytest.approx(25.0, abs=1e-6)


def test_random_tilts_and_points(pt111):
    ch3co = get_adsorbate("CH3CO")
    placed = random_placements(pt111, ch3co, 30, seed=11, max_tilt=30.0)
    n = len(pt111)
    cell = pt111.cell.array
    fracs = []
    for system in placed:
        assert system.info["placement_tilt"] <= 30.0 + 1e-9
        b = system.info["binding_indices"][0]
        frac = np.linalg.solve(cell.T, system.positions[b])[:2]
        assert np.all((frac >= -1e-9) & (frac < 1 + 1e-9))
        fracs.append(frac)
        assert len(system) == n + len(ch3co)
    # seeded: same seed, same placements; another seed, others
    again = random_placements(pt111, ch3co, 30, seed=11)
    np.testing.assert_allclose(again[7].positions, placed[7].positions)
    other = random_placements(pt111, ch3co, 30, seed=12)
    assert not np.allclose(other[7].positions, placed[7].positions)
    assert np.std(np.array(fracs), axis=0).min() > 0.15  # spread over the cell (uniform: 0.29)


@pytest.mark.parametrize(
    "make, kinds",
    [
        (lambda: fcc111("Pt", (2, 2, 3), vacuum=8.0), {"ontop", "bridge", "hollow-fcc", "hollow-hcp"}),
        (lambda: fcc100("Cu", (2, 2, 3), vacuum=8.0), {"ontop", "bridge", "4-fold"}),
    ],
)
def test_heuristic_sites_cover_every_site_kind(make, kinds):
    slab = convert_ase_tags(make())
    placed = heuristic_placements(slab, get_adsorbate("O"))
    found = [classify_site(s, s.info["binding_indices"][0]).kind for s in placed]
    assert set(found) == kinds and len(found) == len(kinds)  # symmetry-reduced: one per kind


def test_slab_wrapped_across_the_cell_boundary(pt111):
    shifted = pt111.copy()
    shifted.positions[:, 2] -= pt111.positions[:, 2].min() + 1.0  # bottom layer below z = 0
    shifted.wrap()
    system = place_adsorbate(shifted, get_adsorbate("O"), (1.0, 1.0, 0.0))
    assert _closest(system, len(shifted)) == pytest.approx(DEFAULT_GAP, abs=1e-6)
    reference = place_adsorbate(pt111, get_adsorbate("O"), (1.0, 1.0, 0.0))
    top = lambda s: s.positions[-1, 2] - s.positions[s.get_tags() == 1, 2].max()
    assert top(system) == pytest.approx(top(reference), abs=1e-9)


def test_bad_inputs(pt111):
    o = get_adsorbate("O")
    with_ads = place_adsorbate(pt111, o, (0, 0, 0))
    with pytest.raises(ValueError, match="bare slab"):
        place_adsorbate(with_ads, o, (0, 0, 0))
    bare = o.copy()
    del bare.info["binding_indices"]
    with pytest.raises(ValueError, match="binding_indices"):
        place_adsorbate(pt111, bare, (0, 0, 0))
    with pytest.raises(ValueError, match="finite"):
        place_adsorbate(pt111, o, (np.nan, 0, 0))
    with pytest.raises(ValueError, match="max_tilt"):
        random_placements(pt111, o, 2, max_tilt=200)
