"""Xu-Wang-Chan-Ho carbon tight binding against analytic and literature references."""

from __future__ import annotations


import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk, graphene
from ase.dft.kpoints import monkhorst_pack

from digmat.design.tightbinding import (
    XU_CARBON,
    CarbonTightBinding,
    TightBindingGap,
    band_gap,
    carbon_band_structure,
    hopping_scaling,
    kmesh,
    kpts_from_density,
    slater_koster_blocks,
    tail_coefficients,
)

P = XU_CARBON


def diamond(a: float = 3.567) -> Atoms:
    return bulk("C", "diamond", a=a)


def graphite(a: float = 2.46, c: float = 6.70) -> Atoms:
    cell = [[a, 0, 0], [-a / 2, a * np.sqrt(3) / 2, 0], [0, 0, c]]
    frac = [[0, 0, 0.25], [0, 0, 0.75], [1 / 3, 2 / 3, 0.25], [2 / 3, 1 / 3, 0.75]]
    return Atoms("C4", cell=cell, scaled_positions=frac, pbc=True)


# --------------------------------------------------------------------------- scaling


def test_scaling_is_one_at_r0_and_vanishes_at_rm():
    assert hopping_scaling(P.r0) == pytest.approx(1.0, abs=1e-12)
    assert hopping_scaling([P.r_m, 3.0, 10.0]) == pytest.approx([0, 0, 0], abs=0)


def test_tail_coefficients_match_published_values():
    # Xu et al. (1992), Table 1: c0..c3 of the hopping tail t(r), r in (2.45, 2.6) Å
    published = [6.7392620074314e-3, -8.1885359517898e-2, 0.1932365259144, 0.3542874332380]
    assert tail_coefficients() == pytest.approx(published, rel=1e-5)


def test_scaling_is_continuous_and_smooth_at_r1_and_rm():
    for r in (P.r1, P.r_m):
        h = 1e-10
        lo, mid, hi = hopping_scaling([r - h, r, r + h])
        assert lo == pytest.approx(hi, abs=1e-10) and mid == pytest.approx(hi, abs=1e-10)
        left = (mid - hopping_scaling(r - 1e-4)) / 1e-4
        right = (hopping_scaling(r + 1e-4) - mid) / 1e-4
        assert left == pytest.approx(right, abs=2e-3 * max(1.0, abs(left)))


# --------------------------------------------------------------------------- SK blocks


def test_slater_koster_blocks_along_axes():
    d = 1.4
    s = float(hopping_scaling(d))
    blk = slater_koster_blocks(np.array([[d, 0, 0], [0, 0, -d]]))
    x = np.array([[P.v_sss, P.v_sps, 0, 0], [-P.v_sps, P.v_pps, 0, 0],
                  [0, 0, P.v_ppp, 0], [0, 0, 0, P.v_ppp]]) * s
    np.testing.assert_allclose(blk[0], x, atol=1e-12)
    mz = np.array([[P.v_sss, 0, 0, -P.v_sps], [0, P.v_ppp, 0, 0],
                   [0, 0, P.v_ppp, 0], [P.v_sps, 0, 0, P.v_pps]]) * s
    np.testing.assert_allclose(blk[1], mz, atol=1e-12)
    # h(-d) = h(d)^T (Hermiticity of the two-centre integrals)
    v = np.array([[0.3, -1.1, 0.7]])
    np.testing.assert_allclose(slater_koster_blocks(-v)[0], slater_koster_blocks(v)[0].T, atol=1e-14)


# --------------------------------------------------------------------------- k-meshes


def test_kmesh_matches_ase_monkhorst_pack_and_gamma_option():
    for size in [(2, 3, 4), (3, 3, 1)]:
        ours = kmesh(size, gamma_centered=False)
        ref = monkhorst_pack(size)
        key = lambda k: np.lexsort(np.round(k, 9).T)
        np.testing.assert_allclose(ours[key(ours)], ref[key(ref)], atol=1e-12)
    g = kmesh((4, 4, 4))
    assert len(g) == 64 and np.any(np.all(g == 0, axis=1))


def test_kpts_from_density():
    a = diamond()
    b = 2 * np.pi * np.sqrt(3) / 3.567  # |b_i| of fcc, Å⁻¹
    n = int(np.ceil(4.0 * b))
    assert kpts_from_density(a, 4.0) == (n, n, n)
    sheet = graphene(a=2.46, vacuum=5.0)
    sheet.pbc = (True, True, False)
    assert kpts_from_density(sheet, 4.0)[2] == 1


# --------------------------------------------------------------------------- diamond


def test_diamond_gamma_levels_analytic():
    # a = 3.70 Å: second neighbours at 2.616 Å > r_m, so only the 4 bonds count and
    # Γ is analytic: E_s ± 4 V_ssσ s(d), E_p ± (4/3)(V_ppσ + 2 V_ppπ) s(d) (triplets).
    a = 3.70
    s = float(hopping_scaling(a * np.sqrt(3) / 4))
    e = carbon_band_structure(diamond(a), np.zeros((1, 3)))[0]
    pp = 4 / 3 * (P.v_pps + 2 * P.v_ppp) * s
    ref = sorted([P.e_s + 4 * P.v_sss * s, P.e_s - 4 * P.v_sss * s] + [P.e_p - pp] * 3 + [P.e_p + pp] * 3)
    np.testing.assert_allclose(e, ref, atol=1e-10)


def test_diamond_gap_literature_value_and_mesh_convergence():
    # Xu et al. overestimate the gap of diamond: about 6.3 eV (expt. 5.5 eV).
    gaps = [band_gap(diamond(), (n, n, n), refine=False).gap for n in (8, 12, 16)]
    assert abs(gaps[-1] - gaps[-2]) < 0.05
    assert gaps[-1] == pytest.approx(6.3, abs=0.1)
    refined = band_gap(diamond())
    assert refined.gap == pytest.approx(gaps[-1], abs=0.05)
    assert refined.gap <= gaps[-1] + 1e-9  # refinement only lowers the gap


def test_diamond_valence_band_width():
    e = carbon_band_structure(diamond(), (8, 8, 8))
    width = e[:, 3].max() - e[:, 0].min()  # 2 atoms → 4 valence bands
    assert 20.0 < width < 24.0


def test_bands_are_real_sorted_and_hamiltonian_hermitian():
    atoms = diamond().repeat((1, 1, 2))
    atoms.rattle(0.05, seed=1)
    model = CarbonTightBinding(atoms)
    k = np.random.default_rng(0).random((5, 3))
    h = model.hamiltonian(k)
    np.testing.assert_allclose(h, np.conj(np.swapaxes(h, 1, 2)), atol=1e-12)
    e = model.eigenvalues(k)
    assert e.dtype == np.float64 and e.shape == (5, 16)
    assert np.all(np.diff(e, axis=1) >= -1e-12)
    general = np.linalg.eigvals(h)  # independent, non-Hermitian solver
    assert np.abs(general.imag).max() < 1e-9
    np.testing.assert_allclose(e, np.sort(general.real, axis=1), atol=1e-9)
    # time reversal: E(k) = E(−k)
    np.testing.assert_allclose(model.eigenvalues(-k), e, atol=1e-9)


# --------------------------------------------------------------------------- sp2 carbon


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


# --------------------------------------------------------------------------- invariances


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


def test_supercell_band_folding():
    # every primitive eigenvalue at the folded k-points appears in the supercell spectrum
    base = diamond()
    prim = carbon_band_structure(base, np.array([[0.0, 0, 0], [0.5, 0, 0]]))
    sup = carbon_band_structure(base.repeat((2, 1, 1)), np.zeros((1, 3)))[0]
    np.testing.assert_allclose(np.sort(prim.ravel()), sup, atol=1e-9)


def test_input_not_mutated_and_pymatgen_accepted():
    from pymatgen.io.ase import AseAtomsAdaptor

    atoms = diamond()
    atoms.positions += 5.0
    before = atoms.copy()
    g1 = band_gap(atoms, (4, 4, 4))
    assert atoms == before
    g2 = band_gap(AseAtomsAdaptor.get_structure(atoms), (4, 4, 4))
    assert g2.gap == pytest.approx(g1.gap, abs=1e-9)


# --------------------------------------------------------------------------- validation


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


# --------------------------------------------------------------------------- oracle


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


def test_24_atom_cell_band_structure_shape():
    atoms = diamond().repeat((3, 2, 2))
    atoms.rattle(0.05, seed=0)
    e = carbon_band_structure(atoms, (6, 6, 6))
    assert e.shape == (216, 96)


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
