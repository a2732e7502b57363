"""Peptide ensembles as multi-model PDB files (read by MDTraj, VMD, PyMOL, ASE and OpenMM).

Each conformation is one ``MODEL``; atom and residue names are those of the force field
(OpenMM's PDB writer), and ``CONECT`` records are written for the caps.
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence

import numpy as np
from ase import Atoms

from digmat.files import atomic_write_bytes
from digmat.protein.extra import require_protein_extra
from digmat.protein.forcefield import peptide_topology, topology_key

__all__ = ["write_pdb"]


def write_pdb(path: str | os.PathLike, images: Atoms | Sequence[Atoms]) -> None:
    """Write conformations of one peptide as a multi-model PDB file (atomically).

    Parameters
    ----------
    path : path-like
        Output file.
    images : ase.Atoms or sequence of ase.Atoms
        Conformations of the same peptide (same names and residues), positions in Å.

    Raises
    ------
    ValueError
        If ``images`` is empty or mixes peptides.
    """
    require_protein_extra("openmm")
    from openmm import app, unit

    images = [images] if isinstance(images, Atoms) else list(images)
    if not images:
        raise ValueError("no conformations to write")
    key = topology_key(images[0])
    if any(topology_key(a) != key for a in images[1:]):
        raise ValueError("all conformations written to one PDB file must be the same peptide")
    topology = peptide_topology(images[0])
    text = io.StringIO()
    app.PDBFile.writeHeader(topology, text)
    for k, atoms in enumerate(images):
        positions = unit.Quantity(np.asarray(atoms.positions, dtype=float) * 0.1, unit.nanometer)
        app.PDBFile.writeModel(topology, positions, text, modelIndex=k + 1)
    app.PDBFile.writeFooter(topology, text)
    body = text.getvalue()
    if len(images) > 1 and body.rstrip().endswith("\nEND"):
        # A final END after the last ENDMDL is optional; ASE's reader would make it an empty frame.
        body = body.rstrip()[: -len("END")]
    data = body.encode()
    atomic_write_bytes(path, lambda handle: handle.write(data))
