"""Tight-binding band gaps (``digmat.design.bandgap``) against literature values, symmetry and the serial oracle."""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms
from ase.build import graphene

from digmat.design.bandgap import TightBindingGap, band_gap
from digmat.design.tightbinding import carbon_band_structure
from tests.design.test_tightbinding import diamond, graphite


def test_diamond_gap_literature_value_and_mesh_convergence():
    # Xu et al. overestimate the gap of diamond: about 6.3 eV (expt. 5.5 eV).
    gaps = [band_gap(diamond(), (n, n, n), refine=False).gap for n in (8, 12, 16)]
    assert abs(gaps[-1] - gaps[-2]) < 0.05
    assert gaps[-1] == pytest.approx(6.3, abs=0.1)
    refined = band_gap(diamond())
    assert refined.gap == pytest.approx(gaps[-1], abs=0.05)
    assert refined.gap <= gaps[-1] + 1e-9  # refinement only lowers the gap


def test_graphite_is_gapless():
    res = band_gap(graphite(), (9, 9, 3), refine=False)  # mesh contains K and H
    assert res.gap == pytest.approx(0.0, abs=0.05)
    assert band_gap(graphite()).gap == pytest.approx(0.0, abs=0.05)


def test_graphene_gap_closes_at_K():
    sheet = graphene(a=2.46, vacuum=6.0)
    res = band_gap(sheet, (9, 9, 1), refine=False)  # 3n × 3n mesh contains K = (1/3, 1/3)
    assert res.gap == pytest.approx(0.0, abs=1e-6)
    assert res.direct
    k = np.mod(np.array(res.k_cbm[:2]), 1.0)
    assert np.allclose(k, [1 / 3, 1 / 3]) or np.allclose(k, [2 / 3, 2 / 3])
    # a mesh missing K shows a spurious gap that the off-mesh refinement removes
    assert band_gap(sheet, (8, 8, 1), refine=False).gap > 0.5
    assert band_gap(sheet, (8, 8, 1)).gap < 0.01


def test_molecule_gamma_only_homo_lumo():
    ethylene_like = Atoms("C2", positions=[[0, 0, 0], [1.34, 0, 0]])  # non-periodic C2
    res = band_gap(ethylene_like)
    e = carbon_band_structure(ethylene_like, np.zeros((1, 3)))[0]
    assert res.kpts == (1, 1, 1)
    assert res.gap == pytest.approx(max(e[4] - e[3], 0.0), abs=1e-12)


def test_supercell_rotation_permutation_invariance():
    base = diamond(3.6)
    base.rattle(0.04, seed=3)  # break symmetry so the test is not trivial
    ref = band_gap(base, (6, 6, 6), refine=False)
    # 2×1×1 supercell with a 3×6×6 mesh samples exactly the same Bloch states
    sup = band_gap(base.repeat((2, 1, 1)), (3, 6, 6), refine=False)
    assert sup.gap == pytest.approx(ref.gap, abs=1e-8)
    assert sup.vbm == pytest.approx(ref.vbm, abs=1e-8)
    rot = base.copy()
    rot.rotate(37, (1, 2, 3), rotate_cell=True)
    assert band_gap(rot, (6, 6, 6), refine=False).gap == pytest.approx(ref.gap, abs=1e-8)
    perm = base[[1, 0]]
    assert band_gap(perm, (6, 6, 6), refine=False).gap == pytest.approx(ref.gap, abs=1e-8)
    shifted = base.copy()
    shifted.positions += [0.3, -7.1, 12.0]  # unwrapped coordinates
    assert band_gap(shifted, (6, 6, 6), refine=False).gap == pytest.approx(ref.gap, abs=1e-8)


def test_input_not_mutated_and_pymatgen_accepted():
    from pymatgen.io.ase import AseAtomsAdaptor

    atoms = diamond()
    atoms.positions += 5.0
    before = atoms.copy()
    g1 = band_gap(atoms, (4, 4, 4))
    assert atoms == before
    g2 = band_gap(AseAtomsAdaptor.get_structure(atoms), (4, 4, 4))
    assert g2.gap == pytest.approx(g1.gap, abs=1e-9)


@pytest.mark.parametrize(
    "bad, msg",
    [
        (Atoms("CSi", positions=[[0, 0, 0], [1.5, 0, 0]], cell=[5, 5, 5], pbc=True), "carbon only"),
        (Atoms(cell=[3, 3, 3], pbc=True), "no atoms"),
        (Atoms("C2", positions=[[0, 0, 0], [0.3, 0, 0]], cell=[5, 5, 5], pbc=True), "overlap"),
        (Atoms("C", cell=[0.4, 5, 5], pbc=True), "overlap"),
        (Atoms("C", positions=[[np.nan, 0, 0]], cell=[5, 5, 5], pbc=True), "NaN"),
        (Atoms("C", cell=[[1, 0, 0], [2, 0, 0], [0, 0, 3]], pbc=True), "empty"),
    ],
)
def test_bad_input_raises(bad, msg):
    with pytest.raises(ValueError, match=msg):
        band_gap(bad)


def test_bad_kpts_raise():
    with pytest.raises(ValueError):
        band_gap(diamond(), (0, 2, 2))
    with pytest.raises(ValueError):
        band_gap(diamond(), kpt_density=-1.0)


def test_tightbinding_gap_oracle_list_in_array_out():
    structures = [diamond(), graphite(), Atoms("C2", positions=[[0, 0, 0], [0.1, 0, 0]], cell=[4] * 3, pbc=True)]
    oracle = TightBindingGap(kpts=(6, 6, 6), progress=False, on_error="nan")
    gaps = oracle(structures)
    assert gaps.shape == (3,)
    assert gaps[0] == pytest.approx(6.29, abs=0.05) and gaps[1] == pytest.approx(0, abs=0.05)
    assert np.isnan(gaps[2])
    with pytest.raises(ValueError):
        TightBindingGap(progress=False)(structures)


def test_tightbinding_gap_multiprocessing_matches_serial():
    structures = [diamond(3.5 + 0.05 * i) for i in range(4)]
    serial = TightBindingGap(kpts=(4, 4, 4), progress=False)(structures)
    parallel = TightBindingGap(kpts=(4, 4, 4), progress=False, n_jobs=2)(structures)
    np.testing.assert_allclose(parallel, serial, atol=1e-12)


def test_partially_periodic_sheet_without_vacuum_vector():
    # ase.build.graphene() without vacuum has c = 0 and pbc = (T, T, F)
    flat = graphene(a=2.46)
    assert flat.cell.volume == 0 and not flat.pbc[2]
    boxed = graphene(a=2.46, vacuum=6.0)
    boxed.pbc = (True, True, False)
    e_flat = carbon_band_structure(flat, np.array([[0.1, 0.2, 0.0]]))
    e_box = carbon_band_structure(boxed, np.array([[0.1, 0.2, 0.0]]))
    np.testing.assert_allclose(e_flat, e_box, atol=1e-10)
    res = band_gap(flat)
    assert res.kpts[2] == 1 and res.gap < 0.01
    with pytest.raises(ValueError, match="empty"):
        band_gap(Atoms("C", cell=[[2, 0, 0], [4, 0, 0], [0, 0, 0]], pbc=(True, True, False)))
