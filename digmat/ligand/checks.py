"""Poses as RDKit molecules, and PoseBusters' validity checks on them.

PoseBusters (Buttenschoen, Morris & Deane 2024) is the field's judge of generated poses: its
``dock`` configuration checks a ligand's own chemistry (sanitisation, bond lengths and angles,
planarity, internal clashes, internal energy against conformers) and its placement in the
protein (minimum distance and volume overlap with the protein, cofactors and waters).  A pose
passes when every check does.  About 0.8 s per pose on one core.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from digmat.extras import require_extra

__all__ = ["POSEBUSTERS_EXAMPLES", "mols_at", "posebusters_checks", "posebusters_example"]

POSEBUSTERS_EXAMPLES = ("1ia1", "1of6", "1s3v", "1uou")
"""The complexes the posebusters wheel ships (protein with one ligand removed + the crystal ligand)."""


def posebusters_example(name: str) -> tuple[Path, Path]:
    """(protein PDB, crystal ligand SDF) of a complex shipped in the posebusters wheel.

    Raises
    ------
    ValueError
        ``name`` is not one of :data:`POSEBUSTERS_EXAMPLES`.
    """
    if name not in POSEBUSTERS_EXAMPLES:
        raise ValueError(f"{name!r} is not a PoseBusters example ({', '.join(POSEBUSTERS_EXAMPLES)})")
    require_extra("ligand", "posebusters")
    import posebusters

    base = Path(posebusters.__file__).parent / "datasets" / "pdb" / name
    return base / f"{name}_protein_one_lig_removed.pdb", base / f"{name}_ligand.sdf"


def mols_at(mol, positions, *, names=None) -> list:
    """Copies of ``mol`` with their conformer at each pose.

    Parameters
    ----------
    mol : rdkit.Chem.Mol
        The ligand (explicit hydrogens; atom order of ``positions``).
    positions : array_like
        (B, N, 3) or (N, 3) Å.
    names : sequence of str, optional
        ``_Name`` of each copy.
    """
    require_extra("ligand", "rdkit")
    from rdkit import Chem

    x = np.asarray(positions, float).reshape(-1, mol.GetNumAtoms(), 3)
    out = []
    for k, pose in enumerate(x):
        copy = Chem.Mol(mol)
        conf = copy.GetConformer()
        for i, p in enumerate(pose):
            conf.SetAtomPosition(i, p.tolist())
        if names is not None:
            copy.SetProp("_Name", str(names[k]))
        out.append(copy)
    return out


def posebusters_checks(mols, protein: str | os.PathLike, *, config: str = "dock") -> list[dict[str, bool]]:
    """PoseBusters' checks of each pose in ``protein`` (PDB path).

    Returns
    -------
    list of dict
        Per pose: check name → passed, plus ``"all"`` (every check passed); empty for no poses.
    """
    require_extra("ligand", "posebusters")
    mols = list(mols)
    if not mols:
        return []
    from posebusters import PoseBusters

    _revive_rdkit_log_stream()
    frame = PoseBusters(config=config).bust(mols, None, str(protein))
    checks = [c for c in frame.columns if frame[c].dtype == bool]
    rows = []
    for _, row in frame.iterrows():
        result = {c: bool(row[c]) for c in checks}
        result["all"] = all(result.values())
        rows.append(result)
    return rows


def _revive_rdkit_log_stream() -> None:
    """Point RDKit's Python log handler at the live ``sys.stderr`` when its stream was closed.

    PoseBusters silences RDKit by swapping that handler's stream to ``os.devnull`` and back to
    whatever ``sys.stderr`` was at the time. When that was a stream since closed (a test's
    captured output, a redirected notebook cell), the next swap flushes the closed stream and
    every PoseBusters check that loads a molecule fails. The stream is replaced directly, since
    ``setStream`` would flush the closed one first.
    """
    import sys

    import rdkit

    handler = getattr(rdkit, "log_handler", None)
    stream = getattr(handler, "stream", None)
    if stream is not None and getattr(stream, "closed", False):
        handler.stream = sys.stderr
