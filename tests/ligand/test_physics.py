"""The prepared complex is physically sane: GFN-FF keeps the crystal ligand where the crystal has it."""

import numpy as np
import pytest


def test_complex_layout(pocket_1uou):
    from digmat.ligand.molecule import ligand_atoms
    from digmat.ligand.physics import complex_atoms, ligand_slice

    pocket, ligand = pocket_1uou
    lig = ligand_atoms(ligand)
    cx = complex_atoms(pocket, lig)
    assert len(cx) == len(pocket.atoms) + len(lig)
    assert (cx.get_tags()[: len(pocket.atoms)] == 0).all() and (cx.get_tags()[ligand_slice(cx)] == 2).all()
    assert cx.info["charge"] == pocket.charge + lig.info["charge"] == 3
    assert np.array_equal(cx.constraints[0].index, np.arange(len(pocket.atoms)))
    assert "pocket_atoms" not in pocket.atoms.info and not pocket.atoms.constraints  # inputs untouched
    n = len(pocket.atoms)
    assert cx.info["fragments"].tolist() == [0] * n + [1] * len(lig)
    ref = cx.info["ref_charges"]
    assert ref[:n].sum() == pocket.charge and ref[n:].sum() == lig.info["charge"]


def test_gfnff_keeps_each_fragments_formal_charge_and_bonds_none_across(pocket_1uou):
    """Without the hints GFN-FF put the whole charge on the pocket and, on a pose pushed into the
    pocket, bonded ligand to protein (physics module docstring); with them neither happens."""
    pytest.importorskip("gfnff", reason="needs the ligand extra (gfnff)")
    from digmat.ligand.molecule import ligand_atoms
    from digmat.ligand.physics import complex_atoms, gfnff_calculator, ligand_slice

    pocket, ligand = pocket_1uou
    lig = ligand_atoms(ligand)
    cx = complex_atoms(pocket, lig)
    cx.calc = gfnff_calculator(cx.info["charge"])
    q = cx.get_charges()
    assert q[ligand_slice(cx)].sum() == pytest.approx(lig.info["charge"], abs=1e-6)
    assert q[: len(pocket.atoms)].sum() == pytest.approx(pocket.charge, abs=1e-6)
    # a pose 2 Å into the pocket: the same energy whether the calculator was set up on it or on the
    # crystal pose (no ligand-protein bonds perceived from the clash)
    pushed = cx.copy()
    pushed.positions[ligand_slice(cx)] += [2.0, 0.0, 0.0]
    pushed.calc = gfnff_calculator(cx.info["charge"])
    shared = gfnff_calculator(cx.info["charge"])
    first = cx.copy()
    first.calc = shared
    first.get_potential_energy()
    again = pushed.copy()
    again.calc = shared
    assert again.get_potential_energy() == pytest.approx(pushed.get_potential_energy(), abs=1e-6)


@pytest.mark.slow  # ~15 s of GFN-FF relaxation
def test_crystal_pose_is_near_a_gfnff_minimum(posebusters_case):
    """Relaxing the crystal ligand of 1s3v in its 5 Å pocket (ALPB water) moves it < 0.5 Å RMSD.

    A wrong protonation, charge or cap would push it out; measured 0.13 Å (1uou 0.13, 1of6 0.15).
    """
    pytest.importorskip("gfnff", reason="needs the ligand extra (gfnff)")
    from digmat.ligand.molecule import ligand_atoms, read_ligand
    from digmat.ligand.physics import complex_atoms, gfnff_calculator, ligand_slice, relax_ligand
    from digmat.ligand.pocket import extract_pocket
    from digmat.ligand.pose import PoseSpace

    protein, sdf = posebusters_case("1s3v")
    mol = read_ligand(sdf)
    lig = ligand_atoms(mol)
    pocket = extract_pocket(protein, lig.positions[lig.numbers > 1], radius=5.0)
    cx = complex_atoms(pocket, lig)
    start = cx.copy()
    start.calc = gfnff_calculator(cx.info["charge"])
    e0 = start.get_potential_energy()
    relaxed, info = relax_ligand(cx, gfnff_calculator(cx.info["charge"]), fmax=0.1, steps=150)
    assert info["converged"] and info["energy"] < e0
    assert np.array_equal(relaxed.positions[: len(pocket.atoms)], cx.positions[: len(pocket.atoms)])
    rmsd = PoseSpace.from_mol(mol).rmsd(relaxed.positions[ligand_slice(relaxed)], lig.positions)[0, 0]
    assert rmsd < 0.5
