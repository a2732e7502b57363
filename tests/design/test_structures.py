"""Structure-collection readers, Niggli reduction and de-duplication (vs pymatgen/ASE)."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk
from ase.io import write
from pymatgen.analysis.structure_matcher import StructureMatcher
from pymatgen.core import Lattice, Structure
from pymatgen.io.ase import AseAtomsAdaptor

from digmat.design.structures import (
    distinct_structures,
    niggli_reduce,
    read_ase_db,
    read_cdvae_csv,
    read_cif_folder,
    read_extxyz,
    read_structures,
)


def diamond() -> Atoms:
    return bulk("C", "diamond", a=3.567)


def lonsdaleite() -> Atoms:
    s = Structure.from_spacegroup("P6_3/mmc", Lattice.hexagonal(2.51, 4.12), ["C"], [[1 / 3, 2 / 3, 1 / 16]])
    return AseAtomsAdaptor.get_atoms(s)


def graphite() -> Atoms:
    a, c = 2.46, 6.70
    cell = [[a, 0, 0], [-a / 2, a * np.sqrt(3) / 2, 0], [0, 0, c]]
    frac = [[0, 0, 0.25], [0, 0, 0.75], [1 / 3, 2 / 3, 0.25], [2 / 3, 1 / 3, 0.75]]
    return Atoms("C4", cell=cell, scaled_positions=frac, pbc=True)


def variants(atoms: Atoms) -> list[Atoms]:
    """Copies that StructureMatcher must identify with ``atoms``."""
    strained = atoms.copy()
    strained.set_cell(atoms.cell @ np.diag([1.03, 0.98, 1.01]), scale_atoms=True)
    rotated = atoms.copy()
    rotated.rotate(41, (1, -2, 0.5), rotate_cell=True)
    shuffled = atoms.repeat((2, 1, 1))[::-1]
    shuffled.rattle(0.02, seed=2)
    shuffled.positions += [0.7, 0.2, -0.4]
    return [strained, rotated, shuffled]


@pytest.fixture(scope="module")
def collection() -> list[Atoms]:
    structures = [diamond(), lonsdaleite(), graphite()]
    structures += variants(diamond()) + [bulk("C", "diamond", a=3.567, cubic=True)]
    structures += variants(lonsdaleite()) + variants(graphite())
    return structures


EXPECTED = [0, 1, 2, 0, 0, 0, 0, 1, 1, 1, 2, 2, 2]


def test_distinct_structures_groups_copies_and_separates_allotropes(collection):
    before = [a.copy() for a in collection]
    res = distinct_structures(collection)
    assert res.n_distinct == 3
    assert res.representatives == [0, 1, 2]
    assert res.labels.tolist() == EXPECTED
    assert sorted(i for g in res.groups for i in g) == list(range(len(collection)))
    assert all(a == b for a, b in zip(collection, before))  # inputs untouched


def test_distinct_structures_equals_one_group_structures_call(collection):
    structures = [AseAtomsAdaptor.get_structure(a) for a in collection]
    ref = StructureMatcher(ltol=0.3, stol=0.5, angle_tol=10).group_structures(structures)
    ref_sets = sorted(sorted(next(i for i, t in enumerate(structures) if t is s) for s in g) for g in ref)
    res = distinct_structures(structures)
    assert sorted(sorted(g) for g in res.groups) == ref_sets


def test_distinct_structures_key_window_is_a_prefilter(collection):
    energy = np.array([-9.0, -8.9, -9.2] + [-9.0] * 4 + [-8.9] * 3 + [-9.2] * 3)
    same = distinct_structures(collection, key=energy, key_tol=0.05)
    assert same.labels.tolist() == EXPECTED
    energy[3] = -7.0  # a copy whose key is far off is no longer compared with its parent
    split = distinct_structures(collection, key=energy, key_tol=0.05)
    assert split.n_distinct == 4
    with pytest.raises(ValueError, match="key"):
        distinct_structures(collection, key=energy[:3], key_tol=0.1)


def test_distinct_structures_checkpoint_resumes(collection, tmp_path, monkeypatch):
    ckpt = tmp_path / "groups.jsonl"
    first = distinct_structures(collection, checkpoint=ckpt)
    assert ckpt.exists()

    def boom(*args, **kwargs):
        raise AssertionError("matcher called although the checkpoint covers every bucket")

    monkeypatch.setattr(StructureMatcher, "group_structures", boom)
    again = distinct_structures(collection, checkpoint=ckpt)
    assert again.groups == first.groups


def test_distinct_structures_rejects_non_periodic():
    with pytest.raises(ValueError, match="periodic"):
        distinct_structures([Atoms("C2", positions=[[0, 0, 0], [1.3, 0, 0]])])


# --------------------------------------------------------------------------- readers


def test_read_cdvae_csv_roundtrip(tmp_path):
    originals = {"diamond-1": diamond(), "lons-2": lonsdaleite(), "graphite-3": graphite()}
    path = tmp_path / "mini.csv"
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["", "material_id", "cif", "energy_per_atom"])
        for k, (mid, atoms) in enumerate(originals.items()):
            cif = AseAtomsAdaptor.get_structure(atoms).to(fmt="cif")
            w.writerow([10 + k, mid, cif, -9.1 - k])
    read = read_cdvae_csv(path)
    assert [a.info["id"] for a in read] == list(originals)
    assert [a.info["energy_per_atom"] for a in read] == pytest.approx([-9.1, -10.1, -11.1])
    assert [a.info["csv_index"] for a in read] == [10, 11, 12]
    matcher = StructureMatcher(primitive_cell=False, scale=False, stol=0.01, ltol=0.001, angle_tol=0.01)
    for atoms, ref in zip(read, originals.values()):
        assert len(atoms) == len(ref)
        np.testing.assert_allclose(atoms.cell.cellpar(), ref.cell.cellpar(), atol=1e-5)
        assert matcher.fit(AseAtomsAdaptor.get_structure(atoms), AseAtomsAdaptor.get_structure(ref))
    assert len(read_cdvae_csv(path, limit=2)) == 2
    assert [a.info["id"] for a in read_structures(path)] == list(originals)
    with pytest.raises(ValueError, match="column"):
        read_cdvae_csv(path, cif_column="structure")


def test_read_extxyz_db_and_cif_folder(tmp_path):
    from ase.db import connect

    structures = [diamond(), graphite()]
    for k, a in enumerate(structures):
        a.info["material_id"] = f"m{k}"
    xyz = tmp_path / "set.extxyz"
    write(xyz, structures, format="extxyz")
    got = read_extxyz(xyz)
    assert [a.info["id"] for a in got] == ["m0", "m1"]
    np.testing.assert_allclose(got[1].positions, structures[1].positions, atol=1e-8)

    db = tmp_path / "set.db"
    with connect(db) as con:
        con.write(structures[0], material_id="m0", energy_per_atom=-9.0)
        con.write(structures[1])
    got = read_ase_db(db)
    assert [a.info["id"] for a in got] == ["m0", "2"]
    assert got[0].info["energy_per_atom"] == -9.0
    assert [a.info["id"] for a in read_structures(db)] == ["m0", "2"]

    folder = tmp_path / "cifs"
    folder.mkdir()
    for name, a in zip(["b_graphite", "a_diamond"], structures[::-1]):
        AseAtomsAdaptor.get_structure(a).to(filename=str(folder / f"{name}.cif"))
    got = read_cif_folder(folder)
    assert [a.info["id"] for a in got] == ["a_diamond", "b_graphite"]
    assert [len(a) for a in got] == [2, 4]
    assert len(read_structures(folder)) == 2
    with pytest.raises(ValueError, match="format"):
        read_structures(tmp_path / "set.pdf")


# --------------------------------------------------------------------------- Niggli


def test_niggli_reduce_matches_pymatgen_and_copies():
    atoms = diamond()
    skew = np.array([[1, 2, 0], [0, 1, -1], [1, 0, 1]])  # det 1 → same lattice
    assert round(abs(np.linalg.det(skew))) == 1
    skewed = Atoms("C2", cell=skew @ atoms.cell, positions=atoms.positions, pbc=True)
    skewed.info["id"] = "x"
    before = skewed.copy()
    red = niggli_reduce(skewed)
    assert skewed == before and red is not skewed
    assert red.info["id"] == "x"
    ref = AseAtomsAdaptor.get_structure(skewed).lattice.get_niggli_reduced_lattice()
    np.testing.assert_allclose(sorted(red.cell.lengths()), sorted(ref.abc), atol=1e-6)
    assert red.cell.volume == pytest.approx(skewed.cell.volume)
    m = StructureMatcher(primitive_cell=False, scale=False)
    assert m.fit(AseAtomsAdaptor.get_structure(red), AseAtomsAdaptor.get_structure(atoms))
    with pytest.raises(ValueError, match="periodic"):
        niggli_reduce(Atoms("C2", positions=[[0, 0, 0], [1.3, 0, 0]]))
