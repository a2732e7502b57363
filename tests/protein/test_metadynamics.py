"""Well-tempered metadynamics runs: bookkeeping, reweighting arithmetic, file round trip."""

import numpy as np
import pytest

from digmat.protein import BASINS, MetadynamicsConfig, MetadynamicsRun

pytest.importorskip("openmm", reason="needs the protein extra (openmm)")
pytest.importorskip("rdkit", reason="needs the protein extra (rdkit)")

from digmat.protein import run_metadynamics  # noqa: E402

KT_300 = 0.0083144626 * 300.0  # kJ/mol


def _run_with_grid(free, phi_psi, gamma=6.0, burn_in=0.0):
    config = {"temperature": 300.0, "bias_factor": gamma, "burn_in": burn_in}
    return MetadynamicsRun(np.asarray(phi_psi, float).reshape(-1, 1, 2), np.zeros(len(phi_psi)), free,
                           ["phi2", "psi2"], np.zeros((0, 1, 3), np.float32), np.zeros(0, int), {"config": config})


def test_final_bias_interpolates_the_grid():
    n = 72
    axis = -180.0 + np.arange(n) * 360.0 / n
    phi, psi = np.meshgrid(axis, axis, indexing="ij")
    free = 3.0 * np.cos(np.radians(phi)) + 2.0 * np.sin(np.radians(psi))
    rng = np.random.default_rng(0)
    nodes = np.stack([axis[rng.integers(n, size=20)], axis[rng.integers(n, size=20)]], -1)
    points = rng.uniform(-180, 180, size=(200, 2))
    run = _run_with_grid(free, np.concatenate([nodes, points]))
    v = run.final_bias_kj()
    exact = -(5.0 / 6.0) * (3.0 * np.cos(np.radians(np.concatenate([nodes, points])[:, 0]))
                            + 2.0 * np.sin(np.radians(np.concatenate([nodes, points])[:, 1])))
    np.testing.assert_allclose(v[:20], exact[:20], atol=1e-12)
    np.testing.assert_allclose(v[20:], exact[20:], atol=0.01)  # bilinear error ~ (5°)² curvature


def test_weights_undo_the_final_bias():
    free = np.zeros((72, 72))
    free[:36] = 5.0  # φ < 0 half 5 kJ/mol above the φ ≥ 0 half
    run = _run_with_grid(free, [[-90, 0], [90, 0], [-90, 0], [90, 0]], burn_in=0.5)
    w = run.weights()
    assert w[:2].sum() == 0 and w.sum() == pytest.approx(1.0)
    # V_final = −(5/6)·F: the φ < 0 frame is weighted down by exp(−(5/6)·5/kT) relative to φ ≥ 0
    assert w[2] / w[3] == pytest.approx(np.exp(-(5 / 6) * 5.0 / KT_300), rel=1e-9)


def test_openmm_grid_layout_is_converted():
    """OpenMM's Metadynamics stores (ψ, φ) order with both periodic endpoints (as its _addGaussian builds it)."""
    from digmat.protein.metadynamics import grid_in_variable_order

    width = 73
    axis = np.linspace(-180, 180, width)
    phi_part, psi_part = np.cos(np.radians(axis)), 2 * np.sin(np.radians(axis))
    openmm_grid = np.add.outer(psi_part, phi_part)  # [i_psi, i_phi], as reduce(multiply.outer, reversed(...))
    ours = grid_in_variable_order(openmm_grid)
    assert ours.shape == (72, 72)
    np.testing.assert_allclose(ours[10, 30], np.cos(np.radians(axis[10])) + 2 * np.sin(np.radians(axis[30])))


def test_grid_populations_follow_the_free_energy():
    n = 72
    axis = -180.0 + np.arange(n) * 360.0 / n
    phi, psi = np.meshgrid(axis, axis, indexing="ij")
    free = np.where(phi >= 0, KT_300 * np.log(3.0), 0.0)  # φ ≥ 0 three times less likely per cell
    p = _run_with_grid(free, [[0, 0]]).grid_populations()
    assert p[3] == pytest.approx(0.25, abs=1e-12)
    assert p[:3].sum() == pytest.approx(0.75, abs=1e-12)
    assert len(p) == len(BASINS)


def test_short_run_bookkeeping_and_round_trip(alanine_dipeptide, tmp_path):
    config = MetadynamicsConfig(nanoseconds=0.02, equilibration_ps=1.0, frame_ps=5.0)
    run = run_metadynamics(alanine_dipeptide, config, seed=3, threads=1)
    assert run.phi_psi.shape == (20, 1, 2) and run.bias_kj.shape == (20,)
    assert run.frames.shape == (4, len(alanine_dipeptide), 3)
    np.testing.assert_array_equal(run.frame_records, [4, 9, 14, 19])
    assert run.free_energy_kj.shape == (72, 72) and run.cv_names == ["phi2", "psi2"]
    # The bias is highest where the run has been: at the visited (φ, ψ) (variable order, not OpenMM's).
    v = run.final_bias_kj()
    assert v.mean() > -(5 / 6) * run.free_energy_kj.mean()
    assert np.all(run.bias_kj[1:] >= 0) and run.bias_kj[-1] > 0  # Gaussians were deposited
    # A frame's recorded torsions are the frame's own φ/ψ.
    from digmat.protein import phi_psi

    np.testing.assert_allclose(phi_psi(alanine_dipeptide, run.frames[-1].astype(float))[0],
                               run.phi_psi[19, 0], atol=0.05)
    assert run.torsion_names == ["phi:2", "psi:2"]
    np.testing.assert_allclose(run.torsions, run.phi_psi[:, 0], atol=1e-6)
    w = run.weights()
    assert w[:4].sum() == 0 and w.sum() == pytest.approx(1.0)
    run.save(tmp_path / "r.npz")
    back = MetadynamicsRun.load(tmp_path / "r.npz")
    np.testing.assert_allclose(back.phi_psi, run.phi_psi, atol=1e-4)
    np.testing.assert_allclose(back.weights(), w, rtol=1e-4, atol=1e-9)
    assert back.meta["seed"] == 3 and back.meta["sequence"] == "A"
    assert back.torsion_names == run.torsion_names and back.torsions.shape == (20, 2)


def test_side_chain_torsions_are_recorded():
    from digmat.protein import build_peptide

    atoms = build_peptide("V")
    run = run_metadynamics(atoms, MetadynamicsConfig(nanoseconds=0.005, equilibration_ps=0.5), threads=1)
    assert run.torsion_names == ["phi:2", "psi:2", "chi1:2"]
    assert run.torsions.shape == (5, 3)
    np.testing.assert_allclose(run.torsions[:, :2], run.phi_psi[:, 0], atol=1e-6)
    # χ1 is biased too (three CVs, the coarser 3-D grid), and its values drive the reweighting
    assert run.cv_names == ["phi2", "psi2", "chi12"] and run.free_energy_kj.shape == (24, 24, 24)
    np.testing.assert_allclose(run.cv_values, run.torsions, atol=1e-6)
    assert run.grid_populations().sum() == pytest.approx(1.0)


def test_three_cv_bias_uses_chi1(tmp_path):
    """A free energy that depends on χ1 only: the final-bias weights must follow χ1, not φ/ψ."""
    n = 24
    axis = -180.0 + np.arange(n) * 360.0 / n
    free = np.broadcast_to(4.0 * np.cos(np.radians(axis))[None, None, :], (n, n, n)).copy()
    rng = np.random.default_rng(1)
    cvs = axis[rng.integers(n, size=(50, 3))]
    config = {"temperature": 300.0, "bias_factor": 6.0, "burn_in": 0.0}
    run = MetadynamicsRun(cvs[:, None, :2], np.zeros(50), free, ["phi2", "psi2", "chi12"],
                          np.zeros((0, 1, 3), np.float32), np.zeros(0, int), {"config": config}, cv_values=cvs)
    np.testing.assert_allclose(run.final_bias_kj(), -(5.0 / 6.0) * 4.0 * np.cos(np.radians(cvs[:, 2])), atol=1e-12)
    run.save(tmp_path / "r.npz")
    back = MetadynamicsRun.load(tmp_path / "r.npz")
    np.testing.assert_allclose(back.cv_values, cvs, atol=1e-4)
    # the grid's basin populations marginalise χ1: flat in φ/ψ here, so each basin gets its area share
    flat = np.ones((n, n))
    assert np.allclose(back.grid_populations(), _run_with_grid(flat, [[0.0, 0.0]]).grid_populations())


def test_tripeptide_biases_each_residues_phi():
    """Two residues: φ of each is biased (2 CVs, the fine grid); ψ is recorded, not biased."""
    from digmat.protein import build_peptide

    atoms = build_peptide("GA")
    config = MetadynamicsConfig(nanoseconds=0.005, equilibration_ps=0.5, frame_ps=1.0)
    run = run_metadynamics(atoms, config, threads=1)
    assert run.cv_names == ["phi2", "phi3"] and run.free_energy_kj.shape == (72, 72)
    assert run.phi_psi.shape == (5, 2, 2)
    np.testing.assert_allclose(run.cv_values, run.phi_psi[:, :, 0], atol=1e-4)
    np.testing.assert_allclose(run.torsions[:, :4], run.phi_psi.reshape(5, 4), atol=1e-6)
    from digmat.protein import phi_psi

    np.testing.assert_allclose(phi_psi(atoms, run.frames[-1].astype(float)), run.phi_psi[-1], atol=0.05)
    assert np.isfinite(run.weights()).all()


def test_more_than_three_residues_are_refused_before_simulating():
    from digmat.protein import backbone_dihedrals, biased_torsions, build_peptide, state_torsions

    atoms = build_peptide("AAAA")
    with pytest.raises(ValueError, match="at most 3 residues"):
        biased_torsions(backbone_dihedrals(atoms), state_torsions(atoms), MetadynamicsConfig())
    with pytest.raises(ValueError, match="at most 3 residues"):
        run_metadynamics(atoms, MetadynamicsConfig(nanoseconds=0.005), threads=1)
