"""Peptides: builder, force field (OpenMM, as an ASE calculator), torsions, basins, references.

Needs the ``protein`` extra (``pip install "digmat[protein]"``: OpenMM and RDKit); importing
this package works without it, and each function that needs them says how to install.
"""

from digmat.protein.basins import BASINS, KB_KCAL, BasinTable, assign_basins, basin_table, free_energies
from digmat.protein.builder import AMINO_ACIDS, build_peptide, check_sequence, read_peptide
from digmat.protein.extra import ProteinExtraMissingError, require_protein_extra
from digmat.protein.forcefield import ForceFieldConfig, OpenMMCalculator, create_system, peptide_topology
from digmat.protein.io import write_pdb
from digmat.protein.metadynamics import (
    MAX_REFERENCE_RESIDUES,
    MetadynamicsConfig,
    MetadynamicsRun,
    biased_torsions,
    run_metadynamics,
)
from digmat.protein.torsions import Dihedral, backbone_dihedrals, dihedral_angles, phi_psi, set_dihedrals, state_torsions

__all__ = [
    "AMINO_ACIDS",
    "BASINS",
    "BasinTable",
    "Dihedral",
    "ForceFieldConfig",
    "KB_KCAL",
    "MAX_REFERENCE_RESIDUES",
    "MetadynamicsConfig",
    "MetadynamicsRun",
    "OpenMMCalculator",
    "ProteinExtraMissingError",
    "assign_basins",
    "backbone_dihedrals",
    "basin_table",
    "biased_torsions",
    "build_peptide",
    "check_sequence",
    "create_system",
    "dihedral_angles",
    "free_energies",
    "peptide_topology",
    "phi_psi",
    "read_peptide",
    "require_protein_extra",
    "run_metadynamics",
    "set_dihedrals",
    "state_torsions",
    "write_pdb",
]
