"""Readers for collections of crystal structures and structure de-duplication.

Every reader returns a list of fresh :class:`ase.Atoms` with ``info['id']``
(a string) and the collection's extra fields in ``info``.  Formats:

* CDVAE / Carbon-24 CSV (:func:`read_cdvae_csv`): columns ``material_id``,
  ``cif`` and any others (``energy_per_atom`` …) copied into ``info``;
* extended XYZ (:func:`read_extxyz`), ASE databases (:func:`read_ase_db`) and
  folders of CIF files (:func:`read_cif_folder`); :func:`read_structures`
  picks one from the path.

:func:`distinct_structures` groups structures with pymatgen's
``StructureMatcher.group_structures``, split first into buckets that cannot
match each other (number of sites after the matcher's own primitive/Niggli
reduction), optionally further by a scalar key such as the energy.
"""

from __future__ import annotations

import csv
import itertools
import json
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from ase import Atoms

__all__ = [
    "DistinctGroups",
    "distinct_structures",
    "niggli_reduce",
    "read_ase_db",
    "read_cdvae_csv",
    "read_cif_folder",
    "read_extxyz",
    "read_structures",
    "to_atoms",
    "to_structure",
]


def to_atoms(structure) -> Atoms:
    """``ase.Atoms`` copy of an ``Atoms`` or pymatgen ``Structure`` (input untouched)."""
    if isinstance(structure, Atoms):
        return structure.copy()
    from pymatgen.core import Structure
    from pymatgen.io.ase import AseAtomsAdaptor

    if isinstance(structure, Structure):
        return AseAtomsAdaptor.get_atoms(structure)
    raise TypeError(f"expected ase.Atoms or pymatgen Structure, got {type(structure).__name__}")


def to_structure(atoms):
    """pymatgen ``Structure`` from ``Atoms`` (or a copy of a ``Structure``)."""
    from pymatgen.core import Structure
    from pymatgen.io.ase import AseAtomsAdaptor

    if isinstance(atoms, Structure):
        return atoms.copy()
    if not isinstance(atoms, Atoms):
        raise TypeError(f"expected ase.Atoms or pymatgen Structure, got {type(atoms).__name__}")
    _check_periodic(atoms)
    return AseAtomsAdaptor.get_structure(atoms)


def _check_periodic(atoms: Atoms) -> None:
    if len(atoms) == 0:
        raise ValueError("structure has no atoms")
    if not np.isfinite(atoms.positions).all() or not np.isfinite(np.asarray(atoms.cell)).all():
        raise ValueError("structure contains NaN or inf coordinates")
    if not atoms.pbc.all() or abs(atoms.cell.volume) < 1e-6:
        raise ValueError("structure must be periodic in 3D with a non-empty cell")


def _parse_value(text: str):
    try:
        value = float(text)
    except ValueError:
        return text
    return int(value) if value.is_integer() and text.strip().lstrip("-").isdigit() else value


def cif_to_atoms(cif: str) -> Atoms:
    from pymatgen.core import Structure
    from pymatgen.io.ase import AseAtomsAdaptor

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        structure = Structure.from_str(cif, fmt="cif")
    atoms = AseAtomsAdaptor.get_atoms(structure)
    atoms.info.clear()
    return atoms


def read_cdvae_csv(
    path: str | os.PathLike,
    *,
    id_column: str = "material_id",
    cif_column: str = "cif",
    limit: int | None = None,
) -> list[Atoms]:
    """Read a CDVAE-style CSV (e.g. Carbon-24 ``train/val/test.csv``).

    Parameters
    ----------
    path : path-like
        CSV with a header; one structure per row as a CIF string.
    id_column, cif_column : str
        Columns holding the identifier and the CIF text.
    limit : int, optional
        Read at most this many rows.

    Returns
    -------
    list of ase.Atoms
        ``info['id']`` from ``id_column``; every other column in ``info``
        (numbers parsed; an unnamed pandas index column as ``csv_index``);
        ``info['source']`` the file name.
    """
    path = Path(path)
    csv.field_size_limit(2**31 - 1)
    out: list[Atoms] = []
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        fields = reader.fieldnames or []
        for col in (id_column, cif_column):
            if col not in fields:
                raise ValueError(f"{path}: no column {col!r} (columns: {fields})")
        for row in reader:
            if limit is not None and len(out) >= limit:
                break
            atoms = cif_to_atoms(row[cif_column])
            atoms.info["id"] = str(row[id_column])
            for key, text in row.items():
                if key in (id_column, cif_column):
                    continue
                atoms.info[key or "csv_index"] = _parse_value(text)
            atoms.info["source"] = path.name
            out.append(atoms)
    return out


def read_extxyz(path: str | os.PathLike, *, index: str | int = ":") -> list[Atoms]:
    """Read an extended-XYZ file; ``info['id']`` from ``id``/``material_id`` or ``<stem>-<i>``."""
    from ase.io import read

    path = Path(path)
    frames = read(path, index=index, format="extxyz")
    frames = frames if isinstance(frames, list) else [frames]
    for i, atoms in enumerate(frames):
        info = atoms.info
        info["id"] = str(info.get("id", info.get("material_id", f"{path.stem}-{i}")))
        info["source"] = path.name
    return frames


def read_ase_db(path: str | os.PathLike, *, selection=None) -> list[Atoms]:
    """Read an ASE database (``.db``/``.json``).

    ``info`` gets the row's key–value pairs and ``db_id``; ``info['id']`` is
    the ``material_id`` key if present, otherwise the row id as a string.
    """
    from ase.db import connect

    path = Path(path)
    out = []
    for row in connect(path).select(selection):
        atoms = row.toatoms()
        atoms.info.update(row.key_value_pairs)
        atoms.info["db_id"] = row.id
        atoms.info["id"] = str(row.key_value_pairs.get("material_id", row.id))
        atoms.info["source"] = path.name
        out.append(atoms)
    return out


def read_cif_folder(path: str | os.PathLike, *, pattern: str = "*.cif") -> list[Atoms]:
    """Read every CIF in a folder (sorted by name); ``info['id']`` is the file stem
    (``<stem>:<k>`` for the k-th block of a multi-block file)."""
    from ase.io import read

    path = Path(path)
    if not path.is_dir():
        raise ValueError(f"{path} is not a directory")
    out = []
    for file in sorted(path.glob(pattern)):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            blocks = read(file, index=":", format="cif")
        for k, atoms in enumerate(blocks):
            atoms.info["id"] = file.stem if len(blocks) == 1 else f"{file.stem}:{k}"
            atoms.info["source"] = file.name
            out.append(atoms)
    return out


def read_structures(path: str | os.PathLike, **kwargs) -> list[Atoms]:
    """Dispatch on the path: folder → CIFs, ``.csv`` → CDVAE CSV,
    ``.xyz``/``.extxyz`` → extended XYZ, ``.db``/``.json`` → ASE database."""
    path = Path(path)
    if path.is_dir():
        return read_cif_folder(path, **kwargs)
    suffix = path.suffix.lower()
    readers = {".csv": read_cdvae_csv, ".xyz": read_extxyz, ".extxyz": read_extxyz,
               ".db": read_ase_db, ".json": read_ase_db}
    if suffix not in readers:
        raise ValueError(f"unknown structure collection format: {path}")
    return readers[suffix](path, **kwargs)


def niggli_reduce(atoms) -> Atoms:
    """Niggli-reduced copy of a 3D-periodic structure (``ase.build.niggli_reduce``).

    The input (``Atoms`` or pymatgen ``Structure``) is not modified; ``info``
    is kept, positions are wrapped into the reduced cell.
    """
    from ase.build import niggli_reduce as _ase_niggli

    out = to_atoms(atoms)
    _check_periodic(out)
    _ase_niggli(out)
    return out


@dataclass(frozen=True)
class DistinctGroups:
    """Result of :func:`distinct_structures`.

    Attributes
    ----------
    groups : list of list of int
        Indices into the input, one list per distinct structure, in input
        order; the first index of each group is its representative.  Groups
        are sorted by representative.
    labels : numpy.ndarray, shape (M,), int
        Group number of every input structure.
    """

    groups: list[list[int]]
    labels: np.ndarray

    @property
    def representatives(self) -> list[int]:
        """Index of the representative (first member) of every group."""
        return [g[0] for g in self.groups]

    @property
    def n_distinct(self) -> int:
        """Number of distinct structures."""
        return len(self.groups)


def _matcher(ltol: float, stol: float, angle_tol: float, **kwargs):
    from pymatgen.analysis.structure_matcher import StructureMatcher

    return StructureMatcher(ltol=ltol, stol=stol, angle_tol=angle_tol, **kwargs)


def _reduced_size(matcher, structure) -> int:
    """Sites after the matcher's own primitive + Niggli reduction."""
    reduce = getattr(matcher, "_get_reduced_structure", None)
    if reduce is not None:
        return len(reduce(structure, matcher._primitive_cell, niggli=True))
    return len(structure.get_primitive_structure(use_site_props=True))  # pragma: no cover


def _key_components(indices: list[int], key: np.ndarray | None, key_tol: float | None) -> list[list[int]]:
    """Split ``indices`` where consecutive sorted keys differ by more than ``key_tol``."""
    if key is None or key_tol is None or len(indices) < 2:
        return [indices]
    order = sorted(indices, key=lambda i: key[i])
    parts, current = [], [order[0]]
    for prev, nxt in itertools.pairwise(order):
        if key[nxt] - key[prev] > key_tol:
            parts.append(sorted(current))
            current = []
        current.append(nxt)
    parts.append(sorted(current))
    return parts


def distinct_structures(
    atoms_list: Sequence,
    *,
    ltol: float = 0.3,
    stol: float = 0.5,
    angle_tol: float = 10.0,
    key: Sequence[float] | None = None,
    key_tol: float | None = None,
    checkpoint: str | os.PathLike | None = None,
    progress: bool = False,
    **matcher_kwargs,
) -> DistinctGroups:
    """Group structures that pymatgen's ``StructureMatcher`` considers equal.

    Parameters
    ----------
    atoms_list : sequence of ase.Atoms or pymatgen Structure
        3D-periodic structures (not modified).
    ltol, stol, angle_tol : float
        ``StructureMatcher`` tolerances (fractional length, site tolerance in
        units of ``(V/N)^(1/3)``, degrees).  Other matcher options via
        ``matcher_kwargs`` (defaults: ``primitive_cell=True, scale=True,
        attempt_supercell=False``).
    key, key_tol : optional
        A scalar per structure (e.g. energy per atom, eV) and a window:
        structures are compared only within chains of keys spaced by at most
        ``key_tol``.  A heuristic speed-up — exact only if equal structures'
        keys differ by ``≤ key_tol``.  The default bucketing by reduced site
        count alone is exact without ``attempt_supercell``.
    checkpoint : path-like, optional
        JSON-lines file of finished buckets; a rerun with the same inputs
        skips them (resumable long runs).
    progress : bool
        tqdm bar over buckets.

    Returns
    -------
    DistinctGroups
        Same grouping as one ``group_structures`` call on the whole list
        (greedy, order-dependent like pymatgen's), when ``key`` is not used.
    """
    from tqdm.auto import tqdm

    structures = [to_structure(a) for a in atoms_list]
    if key is not None:
        key = np.asarray(key, dtype=float)
        if key.shape != (len(structures),) or not np.isfinite(key).all():
            raise ValueError("key must be one finite number per structure")
    matcher = _matcher(ltol, stol, angle_tol, **matcher_kwargs)
    if matcher_kwargs.get("attempt_supercell"):
        buckets: dict[tuple, list[int]] = {("all",): list(range(len(structures)))}
    else:
        buckets = {}
        for i, s in enumerate(structures):
            buckets.setdefault((s.composition.reduced_formula, _reduced_size(matcher, s)), []).append(i)
    parts = [p for b in sorted(buckets) for p in _key_components(buckets[b], key, key_tol)]
    done = _load_checkpoint(checkpoint)
    groups: list[list[int]] = []
    for part in tqdm(parts, disable=not progress, desc="StructureMatcher buckets"):
        tag = json.dumps(part)
        if tag in done:
            groups.extend(done[tag])
            continue
        members = [structures[i] for i in part]
        position = {id(s): i for s, i in zip(members, part)}
        found = [[position[id(s)] for s in g] for g in matcher.group_structures(members)]
        groups.extend(found)
        if checkpoint is not None:
            with open(checkpoint, "a") as fh:
                fh.write(json.dumps({"part": part, "groups": found}) + "\n")
    groups.sort(key=lambda g: g[0])
    labels = np.empty(len(structures), dtype=int)
    for k, g in enumerate(groups):
        labels[g] = k
    return DistinctGroups(groups=groups, labels=labels)


def _load_checkpoint(checkpoint) -> dict[str, list[list[int]]]:
    if checkpoint is None or not Path(checkpoint).exists():
        return {}
    done = {}
    for line in Path(checkpoint).read_text().splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:  # a line cut short by an interrupted run
            continue
        done[json.dumps(rec["part"])] = rec["groups"]
    return done
