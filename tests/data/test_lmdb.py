"""OC20-format LMDB writer and reader (digmat.data.lmdb)."""

from __future__ import annotations

import os
import pickle
import re
import sys
import types

import lmdb
import numpy as np
import pytest
import torch
from ase.build import add_adsorbate, fcc111
from ase.calculators.emt import EMT
from ase.calculators.singlepoint import SinglePointCalculator

from digmat.adsorption import convert_ase_tags
from digmat.data import LmdbDataset, atoms_to_record, record_to_atoms, write_lmdb


def _sample(k: int):
    slab = fcc111("Pt", (2, 2, 3), vacuum=6.0)
    add_adsorbate(slab, "O", 1.2 + 0.1 * k, ("fcc", "hcp", "ontop")[k % 3])
    slab = convert_ase_tags(slab)
    slab.positions += np.random.default_rng(k).normal(scale=0.05, size=slab.positions.shape)
    slab.calc = EMT()
    energy = slab.get_potential_energy()
    forces = slab.get_forces(apply_constraint=False)
    slab.calc = SinglePointCalculator(slab, energy=energy, forces=forces)
    slab.info.update(sid=1000 + k, temperature=300.0 + k, weight=0.25 * k, basin=k % 2)
    slab.set_initial_magnetic_moments(np.linspace(0, 1, len(slab)))
    return slab


def _raw_env(path, write=False):
    return lmdb.open(str(path), subdir=False, readonly=not write, lock=False, map_size=1 << 24)


def test_roundtrip_atoms_exactly(tmp_path):
    images = [_sample(k) for k in range(5)]
    path = tmp_path / "samples.lmdb"
    assert write_lmdb(path, (a for a in images)) == 5  # generators are fine
    assert sorted(p.name for p in tmp_path.iterdir()) == ["samples.lmdb"]  # no temp leftovers
    ds = LmdbDataset(path)
    assert len(ds) == 5
    for k, ref in enumerate(images):
        got = ds.to_atoms(k)
        np.testing.assert_array_equal(got.positions, ref.positions)
        np.testing.assert_array_equal(got.numbers, ref.numbers)
        np.testing.assert_array_equal(got.cell.array, ref.cell.array)
        np.testing.assert_array_equal(got.pbc, ref.pbc)
        np.testing.assert_array_equal(got.get_tags(), ref.get_tags())
        np.testing.assert_array_equal(got.constraints[0].get_indices(), ref.constraints[0].get_indices())
        assert got.get_potential_energy() == ref.calc.results["energy"]
        np.testing.assert_array_equal(got.calc.results["forces"], ref.calc.results["forces"])
        np.testing.assert_array_equal(got.get_initial_magnetic_moments(), ref.get_initial_magnetic_moments())
        for key in ("sid", "temperature", "weight", "basin"):
            assert got.info[key] == ref.info[key] and type(got.info[key]) is type(ref.info[key])
    assert ds.to_atoms(-1).info["sid"] == 1004
    with pytest.raises(IndexError):
        ds[5]


def test_layout_is_oc20(tmp_path):
    path = tmp_path / "x.lmdb"
    write_lmdb(path, [_sample(0), _sample(1)])
    env = _raw_env(path)
    with env.begin() as txn:
        keys = [k for k, _ in txn.cursor()]
        assert sorted(keys) == [b"0", b"1", b"length"]
        assert pickle.loads(txn.get(b"length")) == 2
        data = pickle.loads(txn.get(b"1"))  # plain unpickling with current PyG
    env.close()
    from torch_geometric.data import Data

    assert isinstance(data, Data)
    assert tuple(data.cell.shape) == (1, 3, 3) and data.natoms == 13
    assert data.pos.dtype == torch.float64 and data.atomic_numbers.dtype == torch.long
    assert data.tags.tolist() == _sample(1).get_tags().tolist()
    assert data.fixed.tolist() == (_sample(1).get_tags() == 0).astype(int).tolist()
    assert data.sid == 1001 and data.temperature == 301.0 and data.basin == 1
    ds = LmdbDataset(path)
    assert isinstance(ds[0], Data) and torch.equal(ds[0].pos, pickle.loads(pickle.dumps(ds[0])).pos)


def test_float32_and_dict_records(tmp_path):
    path = tmp_path / "f32.lmdb"
    write_lmdb(path, [_sample(2)], float_dtype="float32", record_type="dict")
    ds = LmdbDataset(path, return_type="dict")
    rec = ds[0]
    assert isinstance(rec, dict) and rec["pos"].dtype == torch.float32
    np.testing.assert_allclose(ds.to_atoms(0).positions, _sample(2).positions, atol=1e-5)


def _fake_pyg1_pickle(fields: dict) -> bytes:
    """Pickle an object whose class path is torch_geometric.data.data.Data and
    whose attributes sit in a plain __dict__, as PyG 1.x wrote them."""
    fake_module = types.ModuleType("torch_geometric.data.data")

    class Data:  # PyG 1.x style: no _store, no __setstate__
        def __init__(self, **kwargs):
            self.__dict__.update(kwargs)

    Data.__module__ = "torch_geometric.data.data"
    Data.__qualname__ = "Data"
    fake_module.Data = Data
    saved = sys.modules.get("torch_geometric.data.data")
    sys.modules["torch_geometric.data.data"] = fake_module
    try:
        return pickle.dumps(Data(**fields), protocol=2)
    finally:
        if saved is not None:
            sys.modules["torch_geometric.data.data"] = saved
        else:
            del sys.modules["torch_geometric.data.data"]


def _oc20_s2ef_fields(n=4):
    rng = np.random.default_rng(0)
    return {
        "x": None, "edge_index": torch.zeros(2, 6, dtype=torch.long), "edge_attr": None,
        "y": -12.5, "pos": torch.tensor(rng.normal(size=(n, 3)) + 5, dtype=torch.float32),
        "cell": torch.eye(3).reshape(1, 3, 3) * 10.0,
        "atomic_numbers": torch.tensor([78.0, 78.0, 8.0, 1.0]),  # OC20 stores floats
        "natoms": n, "cell_offsets": torch.zeros(6, 3), "force": torch.ones(n, 3),
        "tags": torch.tensor([0.0, 1.0, 2.0, 2.0]), "fixed": torch.tensor([1.0, 0.0, 0.0, 0.0]),
        "sid": 2472718, "fid": 7, "__num_nodes__": None,
    }


def test_old_pyg_pickle_opens(tmp_path):
    blob = _fake_pyg1_pickle(_oc20_s2ef_fields())
    naive = pickle.loads(blob)  # what plain unpickling with modern PyG gives
    with pytest.raises((RuntimeError, AttributeError)):
        _ = naive.pos
    path = tmp_path / "old.lmdb"
    env = _raw_env(path, write=True)
    with env.begin(write=True) as txn:  # an old OC20 shard: no "length" key
        txn.put(b"0", blob)
    env.close()
    ds = LmdbDataset(path)
    assert len(ds) == 1
    data = ds[0]
    assert data.sid == 2472718 and tuple(data.pos.shape) == (4, 3)
    atoms = ds.to_atoms(0)
    assert atoms.get_chemical_symbols() == ["Pt", "Pt", "O", "H"]
    assert atoms.get_potential_energy() == -12.5  # from OC20's "y"
    np.testing.assert_array_equal(atoms.calc.results["forces"], np.ones((4, 3)))  # from "force"
    np.testing.assert_array_equal(atoms.get_tags(), [0, 1, 2, 2])
    np.testing.assert_array_equal(atoms.constraints[0].get_indices(), [0])
    assert atoms.pbc.all() and atoms.info["fid"] == 7
    assert "edge_index" not in atoms.arrays and "cell_offsets" not in atoms.arrays


def test_folder_of_shards(tmp_path):
    images = [_sample(k) for k in range(5)]
    write_lmdb(tmp_path / "data.0000.lmdb", images[:2])
    write_lmdb(tmp_path / "data.0001.lmdb", images[2:])
    ds = LmdbDataset(tmp_path)
    assert len(ds) == 5
    assert [ds.to_atoms(i).info["sid"] for i in range(-5, 5)] == [1000 + k % 5 for k in range(-5, 5)]
    clone = pickle.loads(pickle.dumps(ds))  # DataLoader workers
    assert clone.to_atoms(3).info["sid"] == 1003
    other = LmdbDataset(tmp_path / "data.0001.lmdb")  # same file, same process
    ds.close()
    clone.close()
    assert other.to_atoms(0).info["sid"] == 1002


def test_map_size_grows_and_failures_leave_nothing(tmp_path):
    images = [_sample(k % 3) for k in range(40)]
    path = tmp_path / "grow.lmdb"
    write_lmdb(path, images, map_size=1 << 15, commit_every=7)
    assert len(LmdbDataset(path)) == 40
    with pytest.raises(FileExistsError):
        write_lmdb(path, images)

    def broken():
        yield _sample(0)
        raise RuntimeError("sampler crashed")

    target = tmp_path / "broken.lmdb"
    with pytest.raises(RuntimeError, match="sampler crashed"):
        write_lmdb(target, broken())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["grow.lmdb"]
    with pytest.raises(ValueError, match="record 1"):
        write_lmdb(target, [_sample(0), "not a record"])
    write_lmdb(path, images[:1], overwrite=True)
    assert len(LmdbDataset(path)) == 1


def test_reader_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        LmdbDataset(tmp_path / "nope.lmdb")
    with pytest.raises(ValueError, match="no \\*.lmdb"):
        LmdbDataset(tmp_path)
    (tmp_path / "bad.lmdb").write_bytes(b"definitely not lmdb" * 100)
    with pytest.raises(ValueError):
        LmdbDataset(tmp_path / "bad.lmdb")


def test_record_helpers_do_not_mutate():
    atoms = _sample(1)
    before = atoms.positions.copy()
    rec = atoms_to_record(atoms)
    rec["pos"][0, 0] = 999.0  # the record owns its tensors
    np.testing.assert_array_equal(atoms.positions, before)
    back = record_to_atoms(atoms_to_record(atoms))
    np.testing.assert_array_equal(back.positions, before)


def _damaged_copies(tmp_path):
    """A valid LMDB of 40 records (several pages) and damaged copies, each ``<kind>/data.lmdb``.

    ``cut``: the first half of the file; ``scrambled``: 4 KiB of random bytes over the middle;
    ``garbage``: record 7 replaced by bytes that are not a pickle.
    """
    path = tmp_path / "good" / "data.lmdb"
    path.parent.mkdir()
    write_lmdb(path, [_sample(k % 3) for k in range(40)])
    blob = path.read_bytes()
    copies = {}
    for kind in ("cut", "scrambled", "garbage"):
        copies[kind] = tmp_path / kind / "data.lmdb"
        copies[kind].parent.mkdir()
    copies["cut"].write_bytes(blob[: len(blob) // 2])
    middle = len(blob) // 2
    noise = np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes()
    copies["scrambled"].write_bytes(blob[: middle - 2048] + noise + blob[middle + 2048:])
    copies["garbage"].write_bytes(blob)
    with _raw_env(copies["garbage"], write=True) as env, env.begin(write=True) as txn:
        txn.put(b"7", b"\x80\x04not a pickle at all")
    return path, copies


def _read_all(path):
    with LmdbDataset(path) as ds:
        return [ds.to_atoms(i) for i in range(len(ds))]


def test_truncated_and_damaged_files_are_named_not_crashes(tmp_path):
    """A truncated LMDB used to kill the reader with SIGBUS; a bad record raised a bare UnpicklingError."""
    good, copies = _damaged_copies(tmp_path)
    assert len(_read_all(good)) == 40
    with pytest.raises(ValueError, match="truncated"):
        LmdbDataset(copies["cut"])
    with pytest.raises(ValueError, match=re.escape(repr(str(copies["scrambled"])))):
        _read_all(copies["scrambled"])
    ds = LmdbDataset(copies["garbage"])
    ds[6]
    with pytest.raises(ValueError, match=r"record 7 of .*garbage.*damaged"):
        ds[7]


def test_missing_records_and_impossible_fields_name_file_and_record(tmp_path):
    """A lost key was a bare KeyError; an atomic number beyond the periodic table passed as an Atoms."""
    path = tmp_path / "d.lmdb"
    write_lmdb(path, [_sample(k) for k in range(6)])
    with _raw_env(path, write=True) as env, env.begin(write=True) as txn:
        txn.delete(b"3")
    with pytest.raises(ValueError, match=r"record 3 of .*d\.lmdb.* missing"):
        LmdbDataset(path)[3]
    with _raw_env(path, write=True) as env, env.begin(write=True) as txn:
        txn.put(b"length", pickle.dumps(9))
    with pytest.raises(ValueError, match=r"d\.lmdb.*length key says 9 records but the file holds 6 entries"):
        LmdbDataset(path)
    with _raw_env(path, write=True) as env, env.begin(write=True) as txn:
        txn.put(b"length", pickle.dumps(4))
    with pytest.raises(ValueError, match=r"d\.lmdb.*record 3 of 4 is missing"):
        LmdbDataset(path)
    record = atoms_to_record(_sample(2))
    record["atomic_numbers"][0] = 4194312
    with _raw_env(path, write=True) as env, env.begin(write=True) as txn:
        txn.put(b"2", pickle.dumps(record))
        txn.put(b"length", pickle.dumps(3))
    with pytest.raises(ValueError, match=r"record 2 of .*d\.lmdb.* atomic numbers outside 0\.\.118"):
        LmdbDataset(path, return_type="dict").to_atoms(2)


@pytest.mark.parametrize(("kind", "says"), [("cut", "truncated"), ("scrambled", "damaged"), ("garbage", "record 7 of")])
def test_train_cli_reports_a_damaged_lmdb_in_one_line(tmp_path, kind, says):
    """Run in a subprocess: before the fix a truncated file was a SIGBUS, which would kill pytest itself."""
    import subprocess

    _, copies = _damaged_copies(tmp_path)
    proc = subprocess.run([sys.executable, "-m", "digmat.cli.main", "train", "adsorption", "--data", str(copies[kind].parent),
                           "--out", str(tmp_path / "run"), "--steps", "1", "--device", "cpu"],
                          capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = [line for line in proc.stderr.splitlines() if "error" in line]
    assert len(lines) == 1 and says in lines[0] and repr(str(copies[kind])) in lines[0], proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
