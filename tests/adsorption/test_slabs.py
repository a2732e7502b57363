"""Reading, validating and tagging slabs (digmat.adsorption.slabs)."""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms
from ase.build import add_adsorbate, bcc110, bulk, fcc100, fcc111, hcp0001, molecule
from ase.constraints import FixAtoms
from ase.geometry import find_mic
from ase.io import write

from digmat.adsorption import (
    convert_ase_tags,
    fix_subsurface,
    infer_tags,
    read_slab,
    slab_heights,
    vacuum_gap,
    validate_slab,
)


def _ase_oc20_tags(atoms: Atoms) -> np.ndarray:
    """Independent reference: ASE layer tags (1 = top) -> OC20, adsorbate (tag 0) -> 2."""
    t = atoms.get_tags()
    return np.select([t == 1, t >= 2], [1, 0], default=2)


def _snapshot(atoms: Atoms):
    return atoms.positions.copy(), atoms.get_tags().copy(), atoms.cell.array.copy(), len(atoms.constraints)


def _assert_unchanged(atoms: Atoms, snap) -> None:
    pos, tags, cell, ncons = snap
    np.testing.assert_array_equal(atoms.positions, pos)
    np.testing.assert_array_equal(atoms.get_tags(), tags)
    np.testing.assert_array_equal(atoms.cell.array, cell)
    assert len(atoms.constraints) == ncons


# ----------------------------------------------------------------- validation


def test_validate_accepts_ase_slab():
    validate_slab(fcc111("Pt", (2, 2, 3), vacuum=5.0))


def test_bulk_is_refused_with_message():
    with pytest.raises(ValueError, match="no vacuum along c") as err:
        validate_slab(bulk("Pt", cubic=True).repeat((2, 2, 2)))
    assert "build_slab" in str(err.value)


def test_molecule_is_refused_with_message():
    mol = molecule("H2O")
    with pytest.raises(ValueError, match="not periodic in-plane"):
        validate_slab(mol)
    mol.center(vacuum=5.0)
    mol.pbc = (True, False, True)
    with pytest.raises(ValueError, match="not periodic in-plane"):
        validate_slab(mol)


def test_slab_without_c_vector_is_refused():
    slab = fcc111("Pt", (2, 2, 3))  # no vacuum: ASE leaves c = 0
    with pytest.raises(ValueError, match="no c vector"):
        validate_slab(slab)


def test_nan_and_overlap_are_refused():
    slab = fcc111("Pt", (2, 2, 3), vacuum=5.0)
    bad = slab.copy()
    bad.positions[3, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        validate_slab(bad)
    dup = slab.copy()
    dup.append(dup[5])
    dup.positions[-1] += [0.1, 0.0, 0.0]
    with pytest.raises(ValueError, match="overlapping atoms"):
        validate_slab(dup)


def test_vacuum_and_heights_across_the_cell_boundary():
    slab = fcc111("Pt", (2, 2, 4), vacuum=6.0)
    ref = slab.positions[:, 2] - slab.positions[:, 2].min()
    np.testing.assert_allclose(slab_heights(slab), ref, atol=1e-9)
    assert vacuum_gap(slab).width == pytest.approx(12.0, abs=1e-9)  # 2 × 6 Å
    wrapped = slab.copy()
    wrapped.translate([0.0, 0.0, 0.5 * slab.cell[2, 2] + 1.0])
    wrapped.pbc = True
    wrapped.wrap()
    z = wrapped.get_scaled_positions()[:, 2]
    assert z.min() < 0.2 and z.max() > 0.8  # the slab now straddles the boundary
    np.testing.assert_allclose(slab_heights(wrapped), ref, atol=1e-9)
    assert vacuum_gap(wrapped).width == pytest.approx(12.0, abs=1e-9)
    validate_slab(wrapped)


# ----------------------------------------------------------------------- tags


@pytest.mark.parametrize(
    "build",
    [
        lambda: fcc111("Pt", (3, 3, 4), vacuum=8.0),
        lambda: fcc100("Cu", (3, 3, 4), vacuum=8.0),
        lambda: hcp0001("Ru", (3, 3, 4), vacuum=8.0),
        lambda: bcc110("Fe", (3, 3, 4), vacuum=8.0),
    ],
)
def test_infer_tags_matches_ase_layer_tags(build):
    slab = build()
    snap = _snapshot(slab)
    tagged = infer_tags(slab)
    _assert_unchanged(slab, snap)
    np.testing.assert_array_equal(tagged.get_tags(), _ase_oc20_tags(slab))
    np.testing.assert_array_equal(convert_ase_tags(slab).get_tags(), _ase_oc20_tags(slab))


def test_infer_tags_with_adsorbates_and_wrapping():
    slab = fcc111("Pt", (3, 3, 4), vacuum=8.0)
    add_adsorbate(slab, "O", 1.2, "fcc")
    co = molecule("CO")  # O first, C second in ASE's CO
    co.rotate(180, "x")
    add_adsorbate(slab, co, 1.9, "ontop", mol_index=1, offset=(1, 1))
    expected = _ase_oc20_tags(slab)
    assert (expected == 2).sum() == 3
    np.testing.assert_array_equal(infer_tags(slab).get_tags(), expected)
    moved = slab.copy()
    moved.pbc = True
    moved.translate([0.0, 0.0, 0.6 * slab.cell[2, 2]])
    moved.wrap()
    np.testing.assert_array_equal(infer_tags(moved).get_tags(), expected)


def test_infer_tags_oxide_keeps_lattice_oxygen_and_finds_hydroxyl():
    from digmat.adsorption import build_slab

    mgo = build_slab(bulk("MgO", "rocksalt", a=4.21), (1, 0, 0), min_slab=6.0)
    top = np.argmax(mgo.positions[:, 2] * (mgo.get_chemical_symbols() == np.array("Mg")))
    hydroxyl = Atoms("OH", positions=[[0, 0, 0], [0, 0, 0.97]])
    hydroxyl.translate(mgo.positions[top] + [0.0, 0.0, 2.0])
    system = mgo + hydroxyl
    tags = infer_tags(system).get_tags()
    assert list(tags[-2:]) == [2, 2]
    lattice_o = [i for i, s in enumerate(mgo.get_chemical_symbols()) if s == "O"]
    assert set(tags[lattice_o]) <= {0, 1}
    np.testing.assert_array_equal(tags[: len(mgo)], mgo.get_tags())


def test_infer_tags_explicit_adsorbate_indices():
    slab = fcc111("Pt", (2, 2, 3), vacuum=6.0)
    add_adsorbate(slab, "Pt", 2.0, "fcc")  # a metal adatom: not auto-detected
    tags = infer_tags(slab, adsorbate_indices=[len(slab) - 1]).get_tags()
    assert tags[-1] == 2 and (tags[:-1] == _ase_oc20_tags(slab)[:-1]).all()


def test_convert_ase_tags_refuses_untagged():
    slab = fcc111("Pt", (2, 2, 3), vacuum=6.0)
    slab.set_tags(0)
    with pytest.raises(ValueError, match="infer_tags"):
        convert_ase_tags(slab)


def test_fix_subsurface_replaces_fixatoms_only():
    slab = convert_ase_tags(fcc111("Pt", (2, 2, 3), vacuum=6.0), fix=False)
    slab.set_constraint(FixAtoms(indices=[0]))
    fixed = fix_subsurface(slab)
    assert len(slab.constraints) == 1 and list(slab.constraints[0].get_indices()) == [0]
    (c,) = fixed.constraints
    np.testing.assert_array_equal(np.sort(c.get_indices()), np.flatnonzero(slab.get_tags() == 0))


# ---------------------------------------------------------------------- files


@pytest.mark.parametrize("fmt, name", [("vasp", "POSCAR"), ("cif", "slab.cif"), ("extxyz", "slab.xyz")])
def test_read_slab_any_format_infers_tags(tmp_path, fmt, name):
    slab = fcc111("Pt", (3, 3, 4), vacuum=8.0, periodic=True)
    add_adsorbate(slab, "O", 1.2, "hcp")
    expected = _ase_oc20_tags(slab)
    plain = slab.copy()
    plain.set_tags(0)  # files generally lose tags
    write(tmp_path / name, plain, format=fmt)
    got = read_slab(tmp_path / name)
    np.testing.assert_array_equal(got.get_tags(), expected)
    shift, _ = find_mic(got.positions - slab.positions, slab.cell, pbc=True)
    np.testing.assert_allclose(shift, 0.0, atol=1e-4)  # same atoms, up to wrapping
    (c,) = got.constraints
    np.testing.assert_array_equal(np.sort(c.get_indices()), np.flatnonzero(expected == 0))
    assert got.info["source"].endswith(name)


def test_read_slab_keeps_oc20_tags(tmp_path):
    slab = convert_ase_tags(fcc111("Pt", (2, 2, 3), vacuum=6.0, periodic=True))
    slab.set_tags(np.where(np.arange(len(slab)) == 0, 1, slab.get_tags()))  # unusual but valid
    write(tmp_path / "s.traj", slab)
    np.testing.assert_array_equal(read_slab(tmp_path / "s.traj").get_tags(), slab.get_tags())


def test_read_slab_does_not_mistake_two_layer_ase_tags(tmp_path):
    slab = fcc111("Pt", (2, 2, 2), vacuum=6.0, periodic=True)  # ASE tags 1, 2
    add_adsorbate(slab, "O", 1.2, "fcc")  # ASE tag 0: looks like OC20 0/1/2
    write(tmp_path / "two.traj", slab)
    np.testing.assert_array_equal(read_slab(tmp_path / "two.traj").get_tags(), _ase_oc20_tags(slab))
    converted = read_slab(tmp_path / "two.traj", tags="ase")
    np.testing.assert_array_equal(converted.get_tags(), _ase_oc20_tags(slab))


def test_read_slab_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_slab(tmp_path / "missing.xyz")
    (tmp_path / "empty.xyz").write_text("")
    with pytest.raises(ValueError, match="empty"):
        read_slab(tmp_path / "empty.xyz")
    (tmp_path / "junk.cif").write_text("this is not a crystal\n")
    with pytest.raises(ValueError, match="could not read"):
        read_slab(tmp_path / "junk.cif")
    write(tmp_path / "bulk.cif", bulk("Cu", cubic=True))
    with pytest.raises(ValueError, match="no vacuum"):
        read_slab(tmp_path / "bulk.cif")
    write(tmp_path / "mol.xyz", molecule("CH4"))
    with pytest.raises(ValueError, match="not periodic"):
        read_slab(tmp_path / "mol.xyz")
