"""OC20-format LMDB datasets: write digmat samples, read them and OC20 itself.

Format (as in the Open Catalyst Project)
----------------------------------------
One LMDB environment per file (``subdir=False``), or a folder of ``*.lmdb``
shards read in sorted order.  Keys are ASCII decimal indices ``b"0"``,
``b"1"`` …; the key ``b"length"`` holds the pickled entry count.  Each value
is a pickled :class:`torch_geometric.data.Data` with

==================  ======================  ==================================
field               shape / type            meaning
==================  ======================  ==================================
``pos``             ``(N, 3)`` float        positions, Å
``atomic_numbers``  ``(N,)`` int64          atomic numbers
``cell``            ``(1, 3, 3)`` float     cell vectors as rows, Å
``pbc``             ``(1, 3)`` bool         periodicity (digmat; OC20: all True)
``natoms``          int                     N
``tags``            ``(N,)`` int64          0 subsurface, 1 surface, 2 adsorbate
``fixed``           ``(N,)`` int64          1 where FixAtoms fixes the atom
``sid``, ``fid``    int or str              system / frame id (if known)
``energy``          float                   eV (OC20 S2EF: ``y``)
``forces``          ``(N, 3)`` float        eV/Å, unconstrained (OC20: ``force``)
extra scalars       int / float / str       e.g. ``temperature`` (K),
                                            ``weight``, ``basin``
extra arrays        ``(N, ...)``            other ``atoms.arrays``
==================  ======================  ==================================

digmat writes float64 by default so that Atoms → LMDB → Atoms is exact;
``float_dtype="float32"`` gives OC20's compact layout.

Old OC20 LMDBs hold pickles of PyG < 2 ``Data`` objects that modern PyG
cannot use; the reader rebuilds them (:func:`digmat.data.records.load_record`),
so both old and new pickles open, with or without PyG installed
(``return_type="dict"``).

.. warning::
   Pickles can execute arbitrary code when loaded.  Only open LMDB files from
   sources you trust (your own runs, the official OC20 downloads).
"""

from __future__ import annotations

import os
import pickle
import shutil
import tempfile
import threading
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, Literal

import numpy as np
from ase import Atoms

from digmat.data.records import as_mapping, to_data, atoms_to_record, load_record, record_to_atoms

__all__ = ["LmdbDataset", "write_lmdb"]


# --------------------------------------------------------------------------
# writer
# --------------------------------------------------------------------------


def write_lmdb(
    path: str | os.PathLike,
    records: Iterable[Atoms | Mapping[str, Any]],
    *,
    overwrite: bool = False,
    float_dtype: str = "float64",
    record_type: Literal["data", "dict"] = "data",
    map_size: int = 1 << 26,
    commit_every: int = 256,
) -> int:
    """Write records to an OC20-format LMDB file, atomically.

    The file is written in a temporary folder next to ``path`` and renamed
    into place only when complete, so readers never see a partial file.

    Parameters
    ----------
    path : str or os.PathLike
        Output file (conventionally ``*.lmdb``).
    records : iterable of ase.Atoms or mapping
        Atoms are converted with :func:`atoms_to_record`; mappings are stored
        as given (they need at least ``pos`` and ``atomic_numbers``).  May be
        a generator.
    overwrite : bool, default False
        Replace an existing file.
    float_dtype : {"float64", "float32"}
        Precision for Atoms records.
    record_type : {"data", "dict"}
        Pickle PyG ``Data`` objects (OC20, default) or plain dicts.
    map_size : int, default 64 MiB
        Initial LMDB map size in bytes; doubled whenever it fills up.
    commit_every : int, default 256
        Records per write transaction.

    Returns
    -------
    int
        Number of records written.
    """
    import lmdb

    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{str(path)!r} exists; pass overwrite=True to replace it")
    if path.is_dir():
        raise ValueError(f"{str(path)!r} is a directory; give a file name such as data.lmdb")
    if record_type not in ("data", "dict"):
        raise ValueError(f"record_type must be 'data' or 'dict', got {record_type!r}")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmpdir = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    tmpfile = tmpdir / path.name
    try:
        env = lmdb.open(str(tmpfile), subdir=False, map_size=int(map_size), meminit=False, lock=False)
        count = 0
        batch: list[tuple[bytes, bytes]] = []
        for rec in records:
            batch.append((str(count).encode("ascii"), _encode(rec, float_dtype, record_type, count)))
            count += 1
            if len(batch) >= commit_every:
                _put_all(env, batch)
                batch = []
        batch.append((b"length", pickle.dumps(count, protocol=pickle.HIGHEST_PROTOCOL)))
        _put_all(env, batch)
        env.sync()
        env.close()
        os.replace(tmpfile, path)
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)
    return count


def _encode(rec, float_dtype: str, record_type: str, index: int) -> bytes:
    if isinstance(rec, Atoms):
        mapping = atoms_to_record(rec, float_dtype=float_dtype)
    elif isinstance(rec, Mapping) or hasattr(rec, "to_dict"):
        mapping = as_mapping(rec)
        missing = [k for k in ("pos", "atomic_numbers") if k not in mapping]
        if missing:
            raise ValueError(f"record {index} lacks {missing}")
    else:
        raise ValueError(f"record {index} is a {type(rec).__name__}; expected ase.Atoms or a dict")
    obj = to_data(mapping) if record_type == "data" else mapping
    return pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)


def _put_all(env, items: list[tuple[bytes, bytes]]) -> None:
    import lmdb

    while True:
        try:
            with env.begin(write=True) as txn:
                for key, value in items:
                    txn.put(key, value)
            return
        except lmdb.MapFullError:
            env.set_mapsize(env.info()["map_size"] * 2)


# --------------------------------------------------------------------------
# reader
# --------------------------------------------------------------------------


# Read-only environments shared within a process.  LMDB (and py-lmdb's guard)
# forbid opening the same file twice in one process, so datasets on the same
# file share one environment, keyed by the data file's identity (a file
# replaced by write_lmdb(..., overwrite=True) gets a new one).
_ENV_CACHE: dict[tuple[int, int], list] = {}
_ENV_LOCK = threading.Lock()


def _file_identity(path: Path, subdir: bool) -> tuple[int, int]:
    st = os.stat(path / "data.mdb" if subdir else path)
    return (st.st_dev, st.st_ino)


def _acquire_env(path: Path, subdir: bool):
    import lmdb

    key = _file_identity(path, subdir)
    with _ENV_LOCK:
        entry = _ENV_CACHE.get(key)
        if entry is None:
            try:
                env = lmdb.open(
                    str(path), subdir=subdir, readonly=True, lock=False,
                    readahead=False, meminit=False, max_readers=126,
                )
            except lmdb.Error as exc:
                raise ValueError(f"{str(path)!r} is not a readable LMDB file: {exc}") from exc
            try:
                _check_complete(env, path / "data.mdb" if subdir else path)
            except ValueError:
                env.close()
                raise
            entry = _ENV_CACHE[key] = [env, 0]
        entry[1] += 1
        return key, entry[0]


def _check_complete(env, data_file: Path) -> None:
    """Refuse a truncated LMDB file before any page beyond its end is touched.

    LMDB memory-maps the file; reading a page past the end of a truncated file raises SIGBUS,
    which kills the process without a message. The meta pages record the last page in use.
    """
    need = (int(env.info()["last_pgno"]) + 1) * int(env.stat()["psize"])
    have = data_file.stat().st_size
    if have < need:
        raise ValueError(f"{str(data_file)!r} is truncated ({have} bytes; its LMDB header needs {need}): "
                         "the file was cut short (interrupted copy or write); regenerate or re-copy it")


def _release_env(key: tuple[int, int]) -> None:
    with _ENV_LOCK:
        entry = _ENV_CACHE.get(key)
        if entry is None:
            return
        entry[1] -= 1
        if entry[1] <= 0:
            entry[0].close()
            del _ENV_CACHE[key]


class LmdbDataset:
    """Read OC20-format LMDB files (a file, an LMDB folder, or a folder of shards).

    Parameters
    ----------
    path : str or os.PathLike
        A ``*.lmdb`` file, a folder holding ``data.mdb``, or a folder of
        ``*.lmdb`` shards (read in sorted order, as OC20 does).
    return_type : {"data", "dict"}, default "data"
        What ``dataset[i]`` returns: a fresh ``torch_geometric.data.Data``
        or a plain dict of its fields.

    Notes
    -----
    Environments open lazily, are shared by all datasets reading the same
    file in a process (LMDB forbids opening a file twice) and are not
    pickled, so a dataset can be handed to ``torch.utils.data.DataLoader``
    workers.  Only open trusted files: unpickling can execute code.

    Damaged files raise ``ValueError`` naming the file: a truncated file, a
    damaged header or a length key that disagrees with the stored entries on
    opening (before any page past the end of the file is mapped, which would
    be a SIGBUS), a damaged page, a missing record or a record that cannot be
    decoded when it is read, with the record's index.
    """

    def __init__(self, path: str | os.PathLike, *, return_type: Literal["data", "dict"] = "data"):
        if return_type not in ("data", "dict"):
            raise ValueError(f"return_type must be 'data' or 'dict', got {return_type!r}")
        self.path = Path(path)
        self.return_type = return_type
        if not self.path.exists():
            raise FileNotFoundError(f"no such LMDB file or folder: {str(self.path)!r}")
        if self.path.is_file():
            self._shards = [(self.path, False)]
        elif (self.path / "data.mdb").is_file():
            self._shards = [(self.path, True)]
        else:
            files = sorted(p for p in self.path.glob("*.lmdb") if p.is_file())
            if not files:
                raise ValueError(f"{str(self.path)!r} holds no *.lmdb files and no data.mdb")
            self._shards = [(p, False) for p in files]
        self._envs: list = [None] * len(self._shards)
        self._env_keys: list = [None] * len(self._shards)
        lengths = []
        for k in range(len(self._shards)):
            lengths.append(self._shard_length(k))
        self._offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(int)

    def _shard_length(self, k: int) -> int:
        """Record count of shard ``k``, checked against the stored entries and keys."""
        env = self._env(k)
        name = str(self._shards[k][0])
        try:
            entries = int(env.stat()["entries"])
            with env.begin() as txn:
                raw = txn.get(b"length")
                n = pickle.loads(raw) if raw is not None else entries
                if isinstance(n, bool) or not isinstance(n, (int, np.integer)):
                    raise TypeError(f"the length key holds a {type(n).__name__}, not an int")
                n = int(n)
                if not 0 <= n <= entries:
                    raise ValueError(f"the length key says {n} records but the file holds {entries} entries")
                for last in sorted({0, n - 1}) if n else ():
                    if txn.get(str(last).encode("ascii")) is None:
                        raise ValueError(f"record {last} of {n} is missing")
        except Exception as exc:  # noqa: BLE001 - lmdb.Error, a damaged pickle, the checks above
            text = " ".join(str(exc).split())[:160]
            detail = text if isinstance(exc, ValueError) else f"{type(exc).__name__}: {text}"
            raise ValueError(f"{name!r} is a damaged LMDB file ({detail}); "
                             "regenerate or re-copy it") from None
        return n

    def _env(self, k: int):
        if self._envs[k] is None:
            shard, subdir = self._shards[k]
            self._env_keys[k], self._envs[k] = _acquire_env(shard, subdir)
        return self._envs[k]

    def __len__(self) -> int:
        return int(self._offsets[-1])

    def _locate(self, index: int) -> tuple[int, int]:
        n = len(self)
        if not isinstance(index, (int, np.integer)):
            raise TypeError(f"index must be an int, got {type(index).__name__}")
        if not -n <= index < n:
            raise IndexError(f"index {index} out of range for {n} records")
        index = int(index) % n
        shard = int(np.searchsorted(self._offsets, index, side="right") - 1)
        return shard, index - int(self._offsets[shard])

    def raw(self, index: int) -> bytes:
        """The stored pickle bytes of record ``index``."""
        import lmdb

        shard, local = self._locate(index)
        try:
            with self._env(shard).begin() as txn:
                blob = txn.get(str(local).encode("ascii"))
        except lmdb.Error as exc:
            raise ValueError(f"record {local} of {str(self._shards[shard][0])!r} is damaged "
                             f"({' '.join(str(exc).split())[:160]}); regenerate or re-copy the file") from None
        if blob is None:
            raise ValueError(f"record {local} of {str(self._shards[shard][0])!r} is missing (key b'{local}' absent): "
                             "the file is damaged")
        return blob

    def __getitem__(self, index: int):
        return self._decode(index, self.return_type)

    def _decode(self, index: int, return_type: str):
        blob = self.raw(index)
        try:
            return load_record(blob, return_type)
        except Exception as exc:  # noqa: BLE001 - a damaged pickle raises many kinds
            shard, local = self._locate(index)
            raise ValueError(f"record {local} of {str(self._shards[shard][0])!r} is damaged ({type(exc).__name__}: "
                             f"{' '.join(str(exc).split())[:120]})") from None

    def __iter__(self) -> Iterator:
        for i in range(len(self)):
            yield self[i]

    def to_atoms(self, index: int) -> Atoms:
        """Record ``index`` as ase.Atoms (see :func:`record_to_atoms`)."""
        record = self._decode(index, "dict")
        try:
            return record_to_atoms(record)
        except Exception as exc:  # noqa: BLE001 - damaged fields fail in many ways
            shard, local = self._locate(index)
            raise ValueError(f"record {local} of {str(self._shards[shard][0])!r} is damaged ({type(exc).__name__}: "
                             f"{' '.join(str(exc).split())[:120]})") from None

    def close(self) -> None:
        """Release the LMDB environments (closed when no dataset uses them)."""
        for k, key in enumerate(getattr(self, "_env_keys", [])):
            if key is not None:
                _release_env(key)
            self._envs[k] = None
            self._env_keys[k] = None

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # interpreter shutdown
            pass

    def __enter__(self) -> LmdbDataset:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_envs"] = [None] * len(self._shards)
        state["_env_keys"] = [None] * len(self._shards)
        return state

    def __repr__(self) -> str:
        return f"LmdbDataset({str(self.path)!r}, {len(self)} records, {len(self._shards)} shard(s))"
