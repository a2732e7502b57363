"""The de-duplicated Carbon-24 split shipped with digmat (``data/carbon24_distinct.json``).

The JSON holds, per distinct structure (group), the representative's and members' ids, the
train/held-out split (by group) and tight-binding gaps; the structures themselves come from the
Carbon-24 CSVs (``val.csv``, ``test.csv``), which are not shipped: pass their folder, set
``DIGMAT_CARBON24``, or keep them at ``../shared/data/carbon_24`` next to the repository.
"""

from __future__ import annotations

import csv
import json
import os
from functools import lru_cache
from importlib import resources
from pathlib import Path

from ase import Atoms

__all__ = ["SPLITS", "carbon24_index", "carbon_prototypes", "find_carbon24_dir", "load_carbon24"]

SPLITS = ("train", "heldout", "all")


@lru_cache(maxsize=1)
def carbon24_index() -> dict:
    """The parsed ``carbon24_distinct.json`` (groups, split, gaps, matcher settings)."""
    text = resources.files("digmat.design").joinpath("data/carbon24_distinct.json").read_text()
    return json.loads(text)


def find_carbon24_dir(path: str | os.PathLike | None = None) -> Path | None:
    """The folder with Carbon-24's ``val.csv``/``test.csv``: ``path``, ``$DIGMAT_CARBON24``,
    ``../shared/data/carbon_24`` relative to the repository or to the working directory; None if absent."""
    repo = Path(__file__).resolve().parents[2]
    candidates = [path, os.environ.get("DIGMAT_CARBON24"), repo.parent / "shared/data/carbon_24", Path.cwd().parent / "shared/data/carbon_24"]
    for c in candidates:
        if c and (Path(c) / "val.csv").is_file() and (Path(c) / "test.csv").is_file():
            return Path(c)
    if path is not None:
        raise FileNotFoundError(f"{path} has no Carbon-24 val.csv and test.csv")
    return None


def load_carbon24(data_dir: str | os.PathLike | None = None, *, split: str = "train", members: bool = False) -> list[Atoms]:
    """Carbon-24 structures of one split of the shipped de-duplication.

    Parameters
    ----------
    data_dir
        Folder with ``val.csv`` and ``test.csv`` (see :func:`find_carbon24_dir`).
    split
        ``"train"`` (576 groups), ``"heldout"`` (64) or ``"all"``.
    members
        False: one representative per group; True: every member of the selected groups.

    Returns
    -------
    list of ase.Atoms with ``info``: ``id``, ``group`` (index in the JSON), ``split``,
    ``tb_gap`` (eV, this structure's own tight-binding gap), ``energy_per_atom``.
    """
    from digmat.design.structures import cif_to_atoms

    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    folder = find_carbon24_dir(data_dir)
    if folder is None:
        raise FileNotFoundError("Carbon-24 CSVs not found; pass data_dir or set DIGMAT_CARBON24 (see digmat.design.carbon24)")
    wanted: dict[str, tuple[int, str, float]] = {}
    order: list[str] = []
    for k, group in enumerate(carbon24_index()["groups"]):
        if split != "all" and group["split"] != split:
            continue
        ids = group["members"] if members else [group["representative"]]
        gaps = group["member_tb_gaps"] if members else [group["tb_gap"]]
        for i, gap in zip(ids, gaps):
            wanted[i] = (k, group["split"], float(gap))
            order.append(i)
    found: dict[str, Atoms] = {}
    csv.field_size_limit(2**31 - 1)
    for name in ("val.csv", "test.csv"):
        with open(folder / name, newline="") as fh:
            for row in csv.DictReader(fh):
                mid = row["material_id"]
                if mid in wanted and mid not in found:
                    atoms = cif_to_atoms(row["cif"])
                    k, part, gap = wanted[mid]
                    atoms.info.update(id=mid, group=k, split=part, tb_gap=gap, energy_per_atom=float(row["energy_per_atom"]))
                    found[mid] = atoms
    missing = [i for i in order if i not in found]
    if missing:
        raise ValueError(f"{len(missing)} structures of the index are not in {folder} (e.g. {missing[:3]})")
    return [found[i] for i in order]


def carbon_prototypes(rattled: int = 0, *, seed: int = 0) -> list[Atoms]:
    """Small carbon crystals built here (no data files): diamond (primitive and cubic),
    lonsdaleite, AB and AA graphite, and ``rattled`` copies of each rattled by 0.03 Å.

    ``info['id']`` names the prototype. Used by tests and the recipes' smoke modes.
    """
    import numpy as np
    from ase.build import bulk

    hexagonal = [[2.51, 0, 0], [-1.255, 2.17372, 0], [0, 0, 4.12]]
    graphite = [[2.46, 0, 0], [-1.23, 2.13042, 0], [0, 0, 6.70]]
    protos = {
        "diamond": bulk("C", "diamond", a=3.567),
        "diamond-cubic": bulk("C", "diamond", a=3.567, cubic=True),
        "lonsdaleite": Atoms("C4", scaled_positions=[[1 / 3, 2 / 3, 1 / 16], [2 / 3, 1 / 3, 9 / 16], [1 / 3, 2 / 3, 7 / 16], [2 / 3, 1 / 3, 15 / 16]],
                             cell=hexagonal, pbc=True),
        "graphite-AB": Atoms("C4", scaled_positions=[[0, 0, 0.25], [0, 0, 0.75], [1 / 3, 2 / 3, 0.25], [2 / 3, 1 / 3, 0.75]], cell=graphite, pbc=True),
        "graphite-AA": Atoms("C2", scaled_positions=[[0, 0, 0], [1 / 3, 2 / 3, 0]], cell=np.array(graphite) * [[1], [1], [0.5]], pbc=True),
    }
    rng = np.random.default_rng(seed)
    out = []
    for name, atoms in protos.items():
        atoms.info["id"] = name
        out.append(atoms)
        for k in range(rattled):
            copy = atoms.copy()
            copy.positions += rng.normal(scale=0.03, size=copy.positions.shape)
            copy.info["id"] = f"{name}-rattled{k}"
            out.append(copy)
    return out
