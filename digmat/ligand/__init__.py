"""Ligands in protein pockets: inputs, pockets, physics (Vina scoring, GFN-FF), references.

Needs the ``ligand`` extra (``pip install "digmat[ligand]"``); importing this package works
without it, and each function that needs a package says how to install it.
"""

from digmat.ligand.molecule import (
    PROTONATION_RULES,
    ProtonationRule,
    ligand_atoms,
    ligand_from_smiles,
    protonate,
    read_ligand,
)
from digmat.ligand.pocket import XH_BOND_LENGTHS, Pocket, extract_pocket, read_protein, residue_charge

__all__ = [
    "PROTONATION_RULES",
    "Pocket",
    "ProtonationRule",
    "XH_BOND_LENGTHS",
    "extract_pocket",
    "ligand_atoms",
    "ligand_from_smiles",
    "protonate",
    "read_ligand",
    "read_protein",
    "residue_charge",
]
