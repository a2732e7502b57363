"""Xu-Wang-Chan-Ho carbon tight binding: hoppings, Hamiltonian and band structures against analytic references."""

from __future__ import annotations


import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk, graphene
from ase.dft.kpoints import monkhorst_pack

from digmat.design.tightbinding import (
    XU_CARBON,
    CarbonTightBinding,
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


# --------------------------------------------------------------------------- invariances


def test_supercell_band_folding():
    # every primitive eigenvalue at the folded k-points appears in the supercell spectrum
    base = diamond()
    prim = carbon_band_structure(base, np.array([[0.0, 0, 0], [0.5, 0, 0]]))
    sup = carbon_band_structure(base.repeat((2, 1, 1)), np.zeros((1, 3)))[0]
    np.testing.assert_allclose(np.sort(prim.ravel()), sup, atol=1e-9)


def test_24_atom_cell_band_structure_shape():
    atoms = diamond().repeat((3, 2, 2))
    atoms.rattle(0.05, seed=0)
    e = carbon_band_structure(atoms, (6, 6, 6))
    assert e.shape == (216, 96)
