"""Adsorbates by OC20 name, ASE G2 name, element symbol or file.

Name resolution (first match wins):

1. an existing file path → read with ``ase.io``;
2. an OC20 adsorbate name exactly as OC20 spells it (``"*OH"``,
   ``"*CH2*O"``, ``"CH2*CO"``);
3. the same name without its stars (``"OH"``, ``"CH2O"`` for ``*CH2*O``),
   when that is unambiguous;
4. an ASE molecule name (the G2 set and ASE's extras: ``"CH3CO"``,
   ``"H2O"``), built with :func:`ase.build.molecule`;
5. an element symbol → a single atom.

Binding atoms (``atoms.info["binding_indices"]``): OC20 entries carry their
own.  For any other molecule: when its bond graph (covalent radii × 1.2) is
isomorphic, element by element, to an OC20 adsorbate, the OC20 binding atoms
are mapped onto it (G2 ``CH3CO`` → OC20 ``*COCH3``, bound through the
carbonyl C); otherwise the first non-hydrogen atom (the first atom if all are
H).  An explicit ``binding_indices`` argument overrides both.

The OC20 table (86 adsorbates) is a JSON copy of the pickle shipped in the
MIT-licensed ``fairchem-data-oc`` wheel, made by
``recipes/extract_oc20_adsorbates.py``; see ``digmat/data/oc20_adsorbates.json``
for its source, checksum and licence.
"""

from __future__ import annotations

import difflib
import json
import os
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Literal

import numpy as np
from ase import Atoms
from ase.data import atomic_numbers

__all__ = ["get_adsorbate", "list_adsorbates", "oc20_adsorbate_table"]


@lru_cache(maxsize=1)
def _table() -> tuple[dict, ...]:
    text = resources.files("digmat.data").joinpath("oc20_adsorbates.json").read_text()
    return tuple(json.loads(text)["adsorbates"])


def oc20_adsorbate_table() -> list[dict]:
    """The OC20 adsorbate table.

    Returns
    -------
    list of dict
        One dict per OC20 adsorbate index with keys ``id``, ``name``,
        ``formula``, ``symbols``, ``positions`` (Å), ``binding_indices``,
        ``reaction``.  A fresh copy on each call.
    """
    return json.loads(json.dumps(_table()))


@lru_cache(maxsize=1)
def _oc20_by_name() -> dict[str, dict]:
    return {e["name"]: e for e in _table()}


@lru_cache(maxsize=1)
def _oc20_by_starless() -> dict[str, dict]:
    groups: dict[str, list[dict]] = {}
    for e in _table():
        groups.setdefault(e["name"].replace("*", ""), []).append(e)
    return {k: v[0] for k, v in groups.items() if len(v) == 1}


@lru_cache(maxsize=1)
def _molecule_names() -> frozenset[str]:
    from ase.build.molecule import extra
    from ase.collections import g2

    return frozenset(g2.names) | frozenset(extra)


def list_adsorbates(source: Literal["oc20", "g2", "all"] = "all") -> list[str]:
    """Adsorbate names that :func:`get_adsorbate` resolves.

    Parameters
    ----------
    source : {"oc20", "g2", "all"}
        OC20 names (with stars), ASE molecule names, or both.

    Returns
    -------
    list of str
    """
    if source not in ("oc20", "g2", "all"):
        raise ValueError(f"source must be 'oc20', 'g2' or 'all', got {source!r}")
    names: list[str] = []
    if source in ("oc20", "all"):
        names += [e["name"] for e in _table()]
    if source in ("g2", "all"):
        names += sorted(_molecule_names())
    return names


def _bond_graph(atoms: Atoms):
    import networkx as nx
    from ase.neighborlist import natural_cutoffs, neighbor_list

    mol = Atoms(atoms.numbers, positions=atoms.positions)  # no cell, no pbc
    graph = nx.Graph()
    for k, sym in enumerate(mol.get_chemical_symbols()):
        graph.add_node(k, symbol=sym)
    if len(mol) > 1:
        i, j = neighbor_list("ij", mol, natural_cutoffs(mol, mult=1.2))
        graph.add_edges_from((int(a), int(b)) for a, b in zip(i, j, strict=True) if a < b)
    return graph


def _oc20_match(atoms: Atoms) -> tuple[dict, list[int]] | None:
    """OC20 entry whose bond graph is isomorphic to ``atoms``, with mapped binding atoms."""
    from networkx.algorithms.isomorphism import GraphMatcher, categorical_node_match

    formula = atoms.get_chemical_formula(mode="hill")
    candidates = [e for e in _table() if e["formula"] == formula]
    if not candidates:
        return None
    graph = _bond_graph(atoms)
    match = categorical_node_match("symbol", None)
    for entry in candidates:
        ref = _bond_graph(Atoms(entry["symbols"], positions=entry["positions"]))
        matcher = GraphMatcher(ref, graph, node_match=match)
        if matcher.is_isomorphic():
            mapping = matcher.mapping  # ref index -> atoms index
            return entry, [int(mapping[i]) for i in entry["binding_indices"]]
    return None


def _default_binding(atoms: Atoms) -> tuple[list[int], dict]:
    found = _oc20_match(atoms)
    if found is not None:
        entry, indices = found
        return indices, {"oc20_match": entry["name"]}
    heavy = [i for i, s in enumerate(atoms.get_chemical_symbols()) if s != "H"]
    return [heavy[0] if heavy else 0], {}


def _finish(atoms: Atoms, binding: list[int], info: dict) -> Atoms:
    out = Atoms(atoms.numbers, positions=atoms.positions)
    out.set_tags(np.full(len(out), 2))
    out.info.update(info)
    out.info["binding_indices"] = [int(i) for i in binding]
    return out


def _suggest(name: str) -> str:
    pool = list_adsorbates("all") + [n.replace("*", "") for n in list_adsorbates("oc20")]
    lowered = {p.lower(): p for p in pool}
    close = difflib.get_close_matches(name.lower(), list(lowered), n=5, cutoff=0.6)
    matches = list(dict.fromkeys(lowered[c] for c in close))
    return f" Close matches: {', '.join(matches)}." if matches else ""


def get_adsorbate(
    name_or_path: str | os.PathLike,
    *,
    binding_indices: list[int] | None = None,
    format: str | None = None,
) -> Atoms:
    """Build an adsorbate molecule with its binding atoms.

    Parameters
    ----------
    name_or_path : str or os.PathLike
        OC20 name (``"*OH"``, ``"OH"``, ``"*COCH3"``), ASE molecule name
        (``"CH3CO"``, also written ``"*CH3CO"``), element symbol (``"O"``) or
        a structure file any ``ase.io`` format reads (see module docstring for
        the resolution order).
    binding_indices : list of int, optional
        Indices of the atoms that bind to the surface; overrides the default.
    format : str, optional
        ``ase.io`` format for files with unusual extensions.

    Returns
    -------
    ase.Atoms
        Non-periodic molecule (positions in Å), all tags 2, with
        ``info["binding_indices"]`` (list of int), ``info["name"]`` and
        ``info["source"]`` (``"oc20"``, ``"g2"``, ``"element"`` or ``"file"``);
        OC20 entries also carry ``info["oc20_id"]`` and ``info["smiles"]``,
        molecules matched to an OC20 adsorbate ``info["oc20_match"]``.

    Raises
    ------
    ValueError
        Unknown name (with close matches), unreadable file or bad
        ``binding_indices``.
    """
    if isinstance(name_or_path, os.PathLike) or (
        isinstance(name_or_path, str) and os.path.isfile(name_or_path)
    ):
        atoms, info = _read_file(Path(name_or_path), format)
    elif isinstance(name_or_path, str):
        atoms, info = _from_name(name_or_path.strip())
    else:
        raise ValueError(f"expected a name or a path, got {type(name_or_path).__name__}")
    if binding_indices is not None:
        binding = [int(i) for i in np.atleast_1d(binding_indices)]
        info.pop("binding_indices", None)
    elif "binding_indices" in info:
        binding = info.pop("binding_indices")
    else:
        binding, extra = _default_binding(atoms)
        info.update(extra)
    if not binding or any(not -len(atoms) <= i < len(atoms) for i in binding):
        raise ValueError(f"binding indices {binding!r} out of range for {len(atoms)} atoms")
    binding = [i % len(atoms) for i in binding]
    return _finish(atoms, binding, info)


def _from_name(name: str) -> tuple[Atoms, dict]:
    if not name:
        raise ValueError("empty adsorbate name")
    entry = _oc20_by_name().get(name) or _oc20_by_starless().get(name.replace("*", ""))
    if entry is not None:
        atoms = Atoms(entry["symbols"], positions=entry["positions"])
        info = {
            "name": entry["name"], "source": "oc20", "oc20_id": entry["id"],
            "smiles": entry["name"], "binding_indices": list(entry["binding_indices"]),
        }
        return atoms, info
    bare = name.replace("*", "")
    if bare in _molecule_names():
        from ase.build import molecule

        return molecule(bare), {"name": bare, "source": "g2"}
    if bare in atomic_numbers and bare != "X":
        return Atoms(bare), {"name": bare, "source": "element"}
    raise ValueError(
        f"unknown adsorbate {name!r}: not a file, an OC20 adsorbate, an ASE molecule "
        f"name or an element.{_suggest(bare)} See digmat.adsorption.list_adsorbates()."
    )


def _read_file(path: Path, format: str | None) -> tuple[Atoms, dict]:
    if not path.is_file():
        raise ValueError(f"no such adsorbate file: {str(path)!r}")
    if path.stat().st_size == 0:
        raise ValueError(f"adsorbate file {str(path)!r} is empty")
    import ase.io

    try:
        atoms = ase.io.read(path, format=format)
    except Exception as exc:  # ase.io raises many exception types
        raise ValueError(
            f"could not read {str(path)!r} with ase.io ({type(exc).__name__}: {exc})"
        ) from exc
    if isinstance(atoms, list):
        atoms = atoms[-1]
    if len(atoms) == 0:
        raise ValueError(f"{str(path)!r} contains no atoms")
    info = {"name": path.stem, "source": "file", "path": str(path)}
    stored = atoms.info.get("binding_indices")
    if stored is not None:
        info["binding_indices"] = [int(i) for i in np.atleast_1d(stored)]
    return atoms, info
