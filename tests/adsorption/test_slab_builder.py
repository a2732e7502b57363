"""build_slab: pymatgen SlabGenerator slabs in OC20 conventions."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from ase.build import bulk
from ase.data import atomic_numbers, reference_states

from digmat.adsorption import build_slab, parse_bulk_spec, slab_heights, vacuum_gap

A_PT = reference_states[atomic_numbers["Pt"]]["a"]  # 3.92 Å, ASE's reference
A_FE = reference_states[atomic_numbers["Fe"]]["a"]  # 2.87 Å


def _planes(slab, tol=0.05):
    """(height, indices) of atomic planes, top first."""
    h = slab_heights(slab)
    order = np.argsort(-h)
    planes, current = [], [order[0]]
    for i in order[1:]:
        if h[current[-1]] - h[i] > tol:
            planes.append((h[current[0]], np.array(current)))
            current = []
        current.append(i)
    planes.append((h[current[0]], np.array(current)))
    return planes


def _shortest_inplane_vector(cell):
    a, b = cell[0], cell[1]
    return min(
        np.linalg.norm(i * a + j * b)
        for i, j in itertools.product(range(-4, 5), repeat=2)
        if (i, j) != (0, 0)
    )


def _check_oc20_geometry(slab, min_slab=7.0, min_vacuum=10.0, min_lateral=8.0):
    cell = slab.cell.array
    assert np.allclose(cell[0, 1:], 0.0) and np.allclose(cell[1, 2], 0.0)  # a along x, b in-plane
    assert np.allclose(cell[2, :2], 0.0) and cell[2, 2] > 0  # c along z
    assert slab.pbc.all()
    h = slab_heights(slab)
    assert h.max() >= min_slab - 1e-9
    assert vacuum_gap(slab).width >= min_vacuum - 1e-9
    assert _shortest_inplane_vector(cell) >= min_lateral - 1e-9
    tags = slab.get_tags()
    assert set(tags) == {0, 1}
    (fix,) = slab.constraints
    np.testing.assert_array_equal(np.sort(fix.get_indices()), np.flatnonzero(tags == 0))


def test_pt111_layers_counts_and_tags():
    slab = build_slab("Pt", (1, 1, 1))
    _check_oc20_geometry(slab)
    planes = _planes(slab)
    area = np.linalg.norm(np.cross(slab.cell[0], slab.cell[1]))
    d_nn = A_PT / math.sqrt(2)
    per_layer = area / (math.sqrt(3) / 2 * d_nn**2)  # close-packed plane density
    assert per_layer == pytest.approx(round(per_layer), abs=1e-6)
    assert [len(idx) for _, idx in planes] == [round(per_layer)] * len(planes)
    spacings = -np.diff([z for z, _ in planes])
    np.testing.assert_allclose(spacings, A_PT / math.sqrt(3), atol=1e-6)  # d(111)
    assert len(planes) == math.ceil(7.0 / (A_PT / math.sqrt(3))) + 1  # fewest planes >= 7 Å
    tags = slab.get_tags()
    assert (tags[planes[0][1]] == 1).all() and (tags == 1).sum() == len(planes[0][1])
    assert slab.info["miller"] == (1, 1, 1) and slab.info["n_terminations"] == 1


def test_trimmed_slab_is_minimal():
    slab = build_slab("Pt", (1, 1, 1))
    planes = _planes(slab)
    # Removing the bottom plane would make the slab thinner than 7 Å.
    assert planes[0][0] - planes[-2][0] < 7.0
    untrimmed = build_slab("Pt", (1, 1, 1), trim_layers=False)
    assert len(_planes(untrimmed)) >= len(planes)
    _check_oc20_geometry(untrimmed)


@pytest.mark.parametrize(
    "element, miller, spacing, n_surface_planes",
    [
        ("Pt", (1, 0, 0), A_PT / 2, 1),
        ("Pt", (1, 1, 0), A_PT / (2 * math.sqrt(2)), 2),  # top row CN 7, 2nd layer CN 11
        ("Pt", (2, 1, 1), A_PT / (2 * math.sqrt(6)), 3),  # step edge, terrace, corner
        ("Fe", (1, 1, 0), A_FE / math.sqrt(2), 1),
        ("Fe", (1, 0, 0), A_FE / 2, 2),  # bcc: 2nd layer lacks a 2nd-shell neighbour
        ("Fe", (2, 1, 1), A_FE / math.sqrt(6), 2),
    ],
)
def test_low_and_high_index_fcc_bcc(element, miller, spacing, n_surface_planes):
    slab = build_slab(element, miller)
    _check_oc20_geometry(slab)
    planes = _planes(slab)
    np.testing.assert_allclose(-np.diff([z for z, _ in planes]), spacing, atol=1e-6)
    counts = {len(idx) for _, idx in planes}
    assert len(counts) == 1  # equal plane populations
    tags = slab.get_tags()
    surface = np.concatenate([idx for _, idx in planes[:n_surface_planes]])
    assert (tags[surface] == 1).all() and (tags == 1).sum() == len(surface)


def test_hcp_with_miller_bravais_indices():
    a = build_slab("Ru", (0, 0, 0, 1))
    b = build_slab("Ru", (0, 0, 1))
    assert len(a) == len(b) and a.info["miller"] == (0, 0, 1)
    ref = reference_states[atomic_numbers["Ru"]]
    planes = _planes(a)
    np.testing.assert_allclose(-np.diff([z for z, _ in planes]), ref["a"] * ref["c/a"] / 2, atol=1e-6)


def test_bulk_atoms_and_structure_inputs_are_standardised():
    from pymatgen.io.ase import AseAtomsAdaptor

    primitive = bulk("Cu")  # 1-atom primitive fcc cell
    for source in (primitive, AseAtomsAdaptor.get_structure(primitive)):
        slab = build_slab(source, (1, 1, 1))
        _check_oc20_geometry(slab)
        planes = _planes(slab)
        np.testing.assert_allclose(-np.diff([z for z, _ in planes]), 3.61 / math.sqrt(3), atol=1e-6)
    assert primitive.get_chemical_formula() == "Cu" and len(primitive.constraints) == 0


def test_ordered_l12_terminations():
    a = reference_states[atomic_numbers["Pt"]]["a"] / math.sqrt(2) * 0.75
    a += reference_states[atomic_numbers["Ni"]]["a"] / math.sqrt(2) * 0.25
    a *= math.sqrt(2)  # Vegard on nearest-neighbour distances
    s111 = build_slab("Pt3Ni", (1, 1, 1))
    _check_oc20_geometry(s111)
    for _, idx in _planes(s111):  # L1₂ (111) planes are stoichiometric
        sym = np.array(s111.get_chemical_symbols())[idx]
        assert (sym == "Pt").sum() == 3 * (sym == "Ni").sum()
    planes_spacing = -np.diff([z for z, _ in _planes(s111)])
    np.testing.assert_allclose(planes_spacing, a / math.sqrt(3), atol=1e-6)
    s100 = build_slab("Pt3Ni", (1, 0, 0))
    assert s100.info["n_terminations"] == 2
    tops = set()
    for term in range(2):
        slab = build_slab("Pt3Ni", (1, 0, 0), termination=term)
        compositions = []
        for _, idx in _planes(slab):
            sym = np.array(slab.get_chemical_symbols())[idx]
            compositions.append((sym == "Ni").mean())
        # (100) planes alternate pure Pt and Pt50Ni50
        assert all(c in (0.0, 0.5) for c in compositions)
        assert all(x != y for x, y in itertools.pairwise(compositions))
        tops.add(compositions[0])
    assert tops == {0.0, 0.5}
    with pytest.raises(ValueError, match="termination=2 out of range"):
        build_slab("Pt3Ni", (1, 0, 0), termination=2)


def test_ordered_l10_layers_alternate():
    slab = build_slab("PtNi", (0, 0, 1))
    assert slab.info["alloy"] == "L10"
    comps = [set(np.array(slab.get_chemical_symbols())[idx]) for _, idx in _planes(slab)]
    assert all(len(c) == 1 for c in comps) and all(x != y for x, y in itertools.pairwise(comps))


def test_random_alloy_fraction_seed_and_vegard():
    a = build_slab("Pt0.75Ni0.25", (1, 1, 1), seed=1)
    b = build_slab("Pt0.75Ni0.25", (1, 1, 1), seed=1)
    c = build_slab("Pt3Ni:random", (1, 1, 1), seed=2)
    n_ni = (a.numbers == 28).sum()
    assert n_ni == round(0.25 * len(a))
    assert a.info["alloy_fraction"] == pytest.approx(n_ni / len(a))
    np.testing.assert_array_equal(a.numbers, b.numbers)
    assert len(c) == len(a) and not np.array_equal(a.numbers, c.numbers)
    d_expected = 0.75 * 3.92 / math.sqrt(2) + 0.25 * 3.52 / math.sqrt(2)
    top = _planes(a)[0][1]
    d = np.linalg.norm(a.positions[top][:, None] - a.positions[top][None], axis=2)
    assert d[d > 0.1].min() == pytest.approx(d_expected, abs=1e-6)
    _check_oc20_geometry(a)


def test_parse_bulk_spec():
    assert parse_bulk_spec("NiPt3").elements == ("Pt", "Ni")
    assert parse_bulk_spec("NiPt3").structure == "L12"
    assert parse_bulk_spec("FeAl").structure == "L10"  # Al is fcc: fcc parent
    assert parse_bulk_spec("FeCr").structure == "B2"  # both bcc
    assert parse_bulk_spec("Pt0.8Ni0.2").fraction == pytest.approx(0.2)


@pytest.mark.parametrize(
    "spec, miller, message",
    [
        ("Pq", (1, 1, 1), "Did you mean"),
        ("Pt", (0, 0, 0), "does not define a plane"),
        ("Pt", (1, 1), "3 integers"),
        ("Pt", (1.5, 1, 1), "3 integers"),
        ("PtNi:L12", (1, 1, 1), "3:1"),
        ("Pt3Ni:XYZ", (1, 1, 1), "unknown alloy structure"),
        ("Mn", (1, 1, 1), None),
    ],
)
def test_bad_specs_raise_value_error(spec, miller, message):
    if spec == "Mn":  # complex reference structure: fine for elements, not for alloys
        with pytest.raises(ValueError, match="no fcc/bcc/hcp"):
            build_slab("Mn3Ni", miller)
        return
    with pytest.raises(ValueError, match=message):
        build_slab(spec, miller)


def test_non_periodic_bulk_refused():
    mol = bulk("Cu")
    mol.pbc = False
    with pytest.raises(ValueError, match="3D-periodic"):
        build_slab(mol)
