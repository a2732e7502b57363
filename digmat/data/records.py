"""OC20 records: ase.Atoms <-> PyG ``Data``/dict, and tolerant unpickling.

A record is one LMDB value of an OC20-format dataset (see
:mod:`digmat.data.lmdb` for the field table).  Old OC20 LMDBs hold pickles
of PyG < 2 ``Data`` objects, whose attributes sit directly in ``__dict__``;
modern PyG cannot use them.  :func:`load_record` maps every
``torch_geometric`` class in a pickle to a stand-in and rebuilds a fresh
``Data`` (or dict) from the stored attributes, so old and new pickles both
open, with or without PyG installed (``return_type="dict"``).

.. warning::
   Pickles can execute arbitrary code when loaded.  Only load records from
   sources you trust (your own runs, the official OC20 downloads).
"""

from __future__ import annotations

import io
import pickle
from collections.abc import Mapping
from typing import Any, Literal

import numpy as np
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator
from ase.constraints import FixAtoms
from ase.data import chemical_symbols

__all__ = ["atoms_to_record", "load_record", "record_to_atoms"]

_CORE = {"pos", "atomic_numbers", "cell", "pbc", "natoms", "tags", "fixed"}
_ENERGY_KEYS = ("energy", "y", "y_init")
_FORCE_KEYS = ("forces", "force")
# Graph and bookkeeping fields of OC20 records that do not belong on an Atoms.
_GRAPH_KEYS = {"edge_index", "cell_offsets", "distances", "neighbors", "offsets", "num_nodes"}
_SCALARS = (bool, int, float, str, np.generic)


def _torch():
    import torch

    return torch


# --------------------------------------------------------------------------
# Atoms <-> record
# --------------------------------------------------------------------------


def atoms_to_record(atoms: Atoms, *, float_dtype: str = "float64") -> dict[str, Any]:
    """Convert Atoms to an OC20-style record (dict of tensors and scalars).

    Parameters
    ----------
    atoms : ase.Atoms
        Structure; energy/forces are taken from ``atoms.calc.results`` when
        present (never computed).  ``info`` entries that are scalars, strings
        or flat lists of them are stored (``sid``, ``temperature``, ``weight``,
        ``basin`` ...), and so are per-atom ``arrays`` beyond positions,
        numbers and tags.
    float_dtype : {"float64", "float32"}
        Storage precision of positions, cell and forces.

    Returns
    -------
    dict
    """
    torch = _torch()
    if not isinstance(atoms, Atoms):
        raise ValueError(f"expected ase.Atoms, got {type(atoms).__name__}")
    if float_dtype not in ("float64", "float32"):
        raise ValueError(f"float_dtype must be 'float64' or 'float32', got {float_dtype!r}")
    ftype = getattr(torch, float_dtype)
    n = len(atoms)
    fixed = np.zeros(n, np.int64)
    for c in atoms.constraints:
        if isinstance(c, FixAtoms):
            fixed[c.get_indices()] = 1
    rec: dict[str, Any] = {
        "pos": torch.tensor(atoms.positions, dtype=ftype),
        "atomic_numbers": torch.tensor(atoms.numbers, dtype=torch.long),
        "cell": torch.tensor(atoms.cell.array, dtype=ftype).reshape(1, 3, 3),
        "pbc": torch.tensor(atoms.pbc, dtype=torch.bool).reshape(1, 3),
        "natoms": n,
        "tags": torch.tensor(atoms.get_tags(), dtype=torch.long),
        "fixed": torch.from_numpy(fixed),
    }
    results = getattr(atoms.calc, "results", None) or {}
    if results.get("energy") is not None:
        rec["energy"] = float(results["energy"])
    if results.get("forces") is not None:
        rec["forces"] = torch.tensor(np.asarray(results["forces"]), dtype=ftype)
    for key, value in atoms.info.items():
        if key in rec or key in _GRAPH_KEYS:
            continue
        if isinstance(value, _SCALARS):
            rec[key] = value.item() if isinstance(value, np.generic) else value
        elif isinstance(value, (list, tuple)) and all(isinstance(v, _SCALARS) for v in value):
            rec[key] = [v.item() if isinstance(v, np.generic) else v for v in value]
    for key, value in atoms.arrays.items():
        if key in ("numbers", "positions", "tags") or key in rec:
            continue
        rec[key] = torch.from_numpy(np.array(value))
    return rec


def _to_numpy(value) -> np.ndarray:
    if hasattr(value, "detach"):
        return value.detach().cpu().numpy()
    return np.asarray(value)


def _to_python(value):
    arr = _to_numpy(value) if hasattr(value, "detach") or isinstance(value, np.ndarray) else None
    if arr is not None and arr.size == 1:
        return arr.reshape(-1)[0].item()
    if arr is not None:
        return arr
    return value.item() if isinstance(value, np.generic) else value


def record_to_atoms(record) -> Atoms:
    """Convert an OC20 record (PyG ``Data`` or dict) to ase.Atoms.

    ``tags`` become Atoms tags, ``fixed`` a FixAtoms constraint, ``energy``
    (or OC20's ``y`` / IS2RE ``y_init``) and ``forces`` (or ``force``) a
    :class:`~ase.calculators.singlepoint.SinglePointCalculator`; other
    per-atom tensors go to ``atoms.arrays`` and scalars to ``atoms.info``.
    Graph fields (``edge_index``, ``cell_offsets`` ...) are dropped.

    Parameters
    ----------
    record : torch_geometric.data.Data or Mapping

    Returns
    -------
    ase.Atoms
    """
    data = as_mapping(record)
    missing = [k for k in ("pos", "atomic_numbers") if data.get(k) is None]
    if missing:
        raise ValueError(f"record lacks {missing}; fields present: {sorted(data)}")
    pos = _to_numpy(data["pos"]).astype(float).reshape(-1, 3)
    n = len(pos)
    numbers = np.rint(_to_numpy(data["atomic_numbers"])).astype(int).reshape(-1)
    bad = numbers[(numbers < 0) | (numbers >= len(chemical_symbols))]
    if bad.size:
        raise ValueError(f"record has atomic numbers outside 0..{len(chemical_symbols) - 1}: {sorted(set(bad.tolist()))[:5]}")
    cell = _to_numpy(data["cell"]).astype(float).reshape(3, 3) if data.get("cell") is not None else None
    pbc = _to_numpy(data["pbc"]).astype(bool).reshape(3) if data.get("pbc") is not None else cell is not None
    atoms = Atoms(numbers=numbers, positions=pos, cell=cell, pbc=pbc)
    if data.get("tags") is not None:
        atoms.set_tags(np.rint(_to_numpy(data["tags"])).astype(int).reshape(-1))
    if data.get("fixed") is not None:
        mask = _to_numpy(data["fixed"]).astype(bool).reshape(-1)
        if mask.any():
            atoms.set_constraint(FixAtoms(mask=mask))
    energy_key = next((k for k in _ENERGY_KEYS if data.get(k) is not None), None)
    forces_key = next((k for k in _FORCE_KEYS if data.get(k) is not None), None)
    used = _CORE | _GRAPH_KEYS | {energy_key, forces_key}
    for key, value in data.items():
        if key in used or value is None or key.startswith("_"):
            continue
        arr = _to_numpy(value) if hasattr(value, "detach") or isinstance(value, np.ndarray) else None
        if arr is not None and arr.ndim >= 1 and arr.shape[0] == n and (n > 1 or arr.ndim > 1):
            atoms.arrays[key] = arr.copy()
        else:
            atoms.info[key] = _to_python(value)
    if energy_key is not None or forces_key is not None:
        atoms.calc = SinglePointCalculator(
            atoms,
            energy=None if energy_key is None else float(_to_python(data[energy_key])),
            forces=None if forces_key is None else _to_numpy(data[forces_key]).astype(float).reshape(n, 3),
        )
    return atoms


def as_mapping(record) -> dict[str, Any]:
    if isinstance(record, Mapping):
        return dict(record)
    if hasattr(record, "to_dict"):  # torch_geometric Data
        return dict(record.to_dict())
    raise ValueError(f"cannot read a record of type {type(record).__name__}")


def to_data(mapping: dict[str, Any]):
    from torch_geometric.data import Data

    return Data(**mapping)


# --------------------------------------------------------------------------
# tolerant unpickling (PyG 1.x and 2.x Data pickles)
# --------------------------------------------------------------------------


class _PygStandIn:
    """Stand-in for a torch_geometric class: records the pickled state."""

    _pyg_path = "torch_geometric"

    def __init__(self, *args, **kwargs):
        self.__dict__["_state"] = dict(kwargs)

    def __setstate__(self, state):
        if isinstance(state, tuple) and len(state) == 2:  # (dict state, slot state)
            state = {**(state[0] or {}), **(state[1] or {})}
        self.__dict__["_state"] = dict(state or {})


_STAND_INS: dict[str, type] = {}


def _stand_in(module: str, name: str) -> type:
    path = f"{module}.{name}"
    if path not in _STAND_INS:
        _STAND_INS[path] = type(name, (_PygStandIn,), {"_pyg_path": path})
    return _STAND_INS[path]


class _TolerantUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if module == "torch_geometric" or module.startswith("torch_geometric."):
            return _stand_in(module, name)
        return super().find_class(module, name)


def _rebuild(obj):
    """Turn Data stand-ins into plain attribute dicts (recursively through containers)."""
    if isinstance(obj, _PygStandIn):
        state = obj._state
        cls_name = type(obj).__name__
        if "_store" in state:  # PyG >= 2.0: attributes live in a GlobalStorage
            store = state["_store"]
            mapping = store._state.get("_mapping", {}) if isinstance(store, _PygStandIn) else dict(store)
        elif "_mapping" in state:  # a bare storage object
            mapping = state["_mapping"]
        elif cls_name in ("Data", "Batch") or "pos" in state:  # PyG 1.x: plain __dict__
            mapping = {k: v for k, v in state.items() if not k.startswith("__") and v is not None}
        else:
            raise ValueError(f"unsupported torch_geometric object {obj._pyg_path} in the LMDB")
        return {k: _rebuild(v) for k, v in mapping.items() if not k.startswith("_")}
    if isinstance(obj, dict):
        return {k: _rebuild(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_rebuild(v) for v in obj]
    return obj


def load_record(blob: bytes, return_type: Literal["data", "dict"] = "data"):
    """Unpickle one LMDB value (old or new PyG ``Data``, or a dict).

    Parameters
    ----------
    blob : bytes
    return_type : {"data", "dict"}

    Returns
    -------
    torch_geometric.data.Data or dict
    """
    obj = _rebuild(_TolerantUnpickler(io.BytesIO(blob)).load())
    if not isinstance(obj, dict):
        raise ValueError(f"LMDB value is a {type(obj).__name__}, not a Data record")
    return to_data(obj) if return_type == "data" else obj
