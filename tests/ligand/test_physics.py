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
