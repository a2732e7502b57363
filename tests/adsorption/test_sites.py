"""classify_site and symmetry-equivalent sites, against ASE's own site positions."""

from __future__ import annotations

import numpy as np
import pytest
from ase.build import add_adsorbate, fcc100, fcc111, fcc211, hcp0001, molecule

from digmat.adsorption import (
    SlabSymmetry,
    build_slab,
    classify_site,
    convert_ase_tags,
    equivalent_site_key,
    group_equivalent_sites,
    infer_tags,
)

HEIGHT = {"ontop": 1.9, "bridge": 1.6, "fcc": 1.2, "hcp": 1.2, "hollow": 1.0}
EXPECTED = {
    "ontop": "ontop", "bridge": "bridge", "fcc": "hollow-fcc", "hcp": "hollow-hcp", "hollow": "4-fold"
}
SURFACES = {
    "fcc111": (lambda: fcc111("Pt", (3, 3, 4), vacuum=8.0), ["ontop", "bridge", "fcc", "hcp"]),
    "hcp0001": (lambda: hcp0001("Ru", (3, 3, 4), vacuum=8.0), ["ontop", "bridge", "fcc", "hcp"]),
    "fcc100": (lambda: fcc100("Cu", (3, 3, 4), vacuum=8.0), ["ontop", "bridge", "hollow"]),
}
CASES = [(surf, site) for surf, (_, sites) in SURFACES.items() for site in sites]


def _with_adsorbate(surface: str, site: str, offset=(1, 1)):
    slab = SURFACES[surface][0]()
    add_adsorbate(slab, "O", HEIGHT[site], site, offset=offset)
    return convert_ase_tags(slab)  # O gets tag 2


def _site_point(slab, site: str, offset=(0, 0), height=None):
    info = slab.info["adsorbate_info"]
    xy = (np.asarray(info["sites"][site]) + offset) @ info["cell"]
    top = slab.positions[:, 2].max()
    return np.array([xy[0], xy[1], top + (HEIGHT[site] if height is None else height)])


@pytest.mark.parametrize("surface, site", CASES)
def test_ase_sites_are_classified(surface, site):
    system = _with_adsorbate(surface, site)
    before = system.positions.copy()
    info = classify_site(system, len(system) - 1)
    np.testing.assert_array_equal(system.positions, before)
    assert info.kind == EXPECTED[site] and info.bound
    n = {"ontop": 1, "bridge": 2, "fcc": 3, "hcp": 3, "hollow": 4}[site]
    assert len(info.binding_atoms) == n and len(set(info.distances)) >= 1
    assert set(system.get_tags()[list(info.binding_atoms)]) == {1}  # top-layer atoms
    np.testing.assert_allclose(info.distances, info.distances[0], atol=1e-6)
    assert info.height == pytest.approx(HEIGHT[site], abs=1e-6)
    # the same site given as a bare point
    assert classify_site(system, system.positions[-1]).kind == info.kind


@pytest.mark.parametrize("surface, site", CASES)
def test_classification_is_periodic(surface, site):
    system = _with_adsorbate(surface, site)
    ref = classify_site(system, len(system) - 1)
    sym = SlabSymmetry(system)
    key = equivalent_site_key(system, ref, symmetry=sym)
    cell = system.cell.array
    for shift in ([-1, 0, 0], [2, -1, 0], [0, 3, 0]):
        moved = system.copy()
        moved.positions[-1] += np.asarray(shift) @ cell  # adsorbate outside the cell
        info = classify_site(moved, len(moved) - 1)
        assert info.kind == ref.kind and sorted(info.binding_atoms) == sorted(ref.binding_atoms)
        assert equivalent_site_key(moved, info, symmetry=sym) == key
    # whole system across the cell boundary along c, and wrapped in-plane
    wrapped = system.copy()
    wrapped.pbc = True
    wrapped.translate([0.4 * cell[0, 0], 0.3 * cell[1, 1], 0.55 * cell[2, 2]])
    wrapped.wrap()
    info = classify_site(wrapped, len(wrapped) - 1)
    assert info.kind == ref.kind and sorted(info.binding_atoms) == sorted(ref.binding_atoms)


def test_fcc211_step_sites_from_geometry():
    slab = infer_tags(fcc211("Pt", (3, 3, 4), vacuum=8.0))
    z = slab.positions[:, 2]
    edge = np.flatnonzero(z > z.max() - 0.1)  # step-edge row, along y
    assert len(edge) == 3
    normal = np.array([0.0, 0.0, 1.0])
    top = classify_site(slab, slab.positions[edge[0]] + 1.9 * normal)
    assert top.kind == "ontop" and top.binding_atoms == (int(edge[0]),)
    a, b = sorted(edge, key=lambda i: slab.positions[i, 1])[:2]
    mid = 0.5 * (slab.positions[a] + slab.positions[b])
    bridge = classify_site(slab, mid + 1.6 * normal)
    assert bridge.kind == "bridge" and sorted(bridge.binding_atoms) == sorted([int(a), int(b)])
    d_nn = np.linalg.norm(slab.positions[a] - slab.positions[b])
    assert d_nn == pytest.approx(3.92 / np.sqrt(2), abs=1e-6)


def test_multiatom_adsorbate_uses_binding_atom():
    slab = fcc111("Pt", (3, 3, 4), vacuum=8.0)
    co = molecule("CO")  # O at index 0, C at 1; put C down
    co.rotate(180, "x")
    add_adsorbate(slab, co, 1.3, "hcp", mol_index=1)
    system = convert_ase_tags(slab)
    assert classify_site(system, len(system) - 1).kind == "hollow-hcp"
    # without tags the O would be taken for a substrate atom unless excluded
    untagged = system.copy()
    untagged.set_tags(0)
    assert classify_site(untagged, len(system) - 1, adsorbate_indices=[len(system) - 2]).kind == "hollow-hcp"


def test_unbound_and_bad_input():
    slab = convert_ase_tags(fcc111("Pt", (2, 2, 3), vacuum=10.0))
    far = classify_site(slab, _site_point(slab, "fcc", height=6.0))
    assert far.kind == "other" and not far.bound and far.binding_atoms == ()
    assert far.height == pytest.approx(6.0, abs=1e-6)
    with pytest.raises(ValueError, match="out of range"):
        classify_site(slab, 99)
    with pytest.raises(ValueError, match="3-vector"):
        classify_site(slab, [0.0, 1.0])
    mol = molecule("H2O")
    with pytest.raises(ValueError, match="periodic in-plane"):
        classify_site(mol, 0)


def test_pt111_symmetry_classes():
    slab = convert_ase_tags(fcc111("Pt", (3, 3, 4), vacuum=8.0))
    sites = []
    top = np.flatnonzero(slab.get_tags() == 1)
    sites += [classify_site(slab, slab.positions[i] + [0, 0, 1.9]) for i in top]
    for kind in ("fcc", "hcp"):
        sites += [classify_site(slab, _site_point(slab, kind, (i, j))) for i in range(3) for j in range(3)]
    # bridges along the three nearest-neighbour directions
    a0 = slab.positions[top[0]]
    for i in top[1:]:
        v = slab.positions[i] - a0
        if abs(np.linalg.norm(v) - 2.7719) < 0.01:
            sites.append(classify_site(slab, a0 + 0.5 * v + [0, 0, 1.6]))
    kinds = [s.kind for s in sites]
    assert kinds[:9] == ["ontop"] * 9 and kinds[9:18] == ["hollow-fcc"] * 9
    assert kinds[18:27] == ["hollow-hcp"] * 9 and set(kinds[27:]) == {"bridge"}
    labels = group_equivalent_sites(slab, sites)
    assert set(labels[:9]) == {0}
    assert len(set(labels[9:18])) == 1 and len(set(labels[18:27])) == 1
    assert labels[9] != labels[18]
    assert len(set(labels[27:])) == 1 and len(kinds[27:]) >= 2  # orientations merge
    assert len(set(labels)) == 4


def test_symmetry_respects_inequivalent_sites_on_a_built_alloy():
    slab = build_slab("Pt3Ni", (1, 1, 1))
    top = np.flatnonzero(slab.get_tags() == 1)
    sites = [classify_site(slab, slab.positions[i] + [0, 0, 1.9]) for i in top]
    labels = group_equivalent_sites(slab, sites)
    symbols = [s.binding_symbols[0] for s in sites]
    for sym in ("Pt", "Ni"):  # all Pt tops merge, all Ni tops merge, never with each other
        assert len({lab for lab, s in zip(labels, symbols, strict=True) if s == sym}) == 1
    assert len(set(labels)) == 2


def test_low_four_fold_hollow_ignores_the_atom_below():
    """H low in the 4-fold hollow of Pd(100) (0.25 Å above the surface: 1.99 Å from its four
    neighbours, 2.2 Å from the second-layer atom below, as CHGNet relaxes it) is a 4-fold site;
    the subsurface atom seen through the hollow is not a binding atom."""
    slab = convert_ase_tags(fcc100("Pd", (3, 3, 4), vacuum=8.0))
    add_adsorbate(slab, "H", 0.25, "hollow")
    slab.set_tags(np.where(np.arange(len(slab)) == len(slab) - 1, 2, slab.get_tags()))
    info = classify_site(slab, len(slab) - 1)
    assert info.kind == "4-fold" and len(info.binding_atoms) == 4
    assert set(slab.get_tags()[list(info.binding_atoms)]) == {1}
    untagged = slab.copy()
    untagged.set_tags(0)
    assert classify_site(untagged, len(slab) - 1, adsorbate_indices=[len(slab) - 1]).kind == "other"  # no tags: no layers known
