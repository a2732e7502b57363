"""Ligands in protein pockets: inputs, pockets, poses, physics (Vina scoring, GFN-FF), references.

Needs the ``ligand`` extra (``pip install "digmat[ligand]"``); importing this package works
without it, and each function that needs a package says how to install it.

- inputs: :func:`read_ligand` (SDF/MOL2), :func:`ligand_from_smiles`, :func:`protonate`,
  :func:`read_protein`, :func:`extract_pocket` (protonated, capped :class:`Pocket`);
- poses: :class:`PoseSpace` (centroid, rotation, torsions on the input geometry; symmetric RMSD);
- physics: :class:`VinaScore` / :class:`VinaCalculator` (AutoDock Vina's scoring in torch),
  :class:`VinaPoseEnergy` (maps), :func:`gfnff_calculator` and :func:`relax_ligand` (GFN-FF),
  :func:`weigh_modes` (modes relaxed by a calculator, harmonic free energies and populations),
  :func:`mine_minima` (the same with many starts per mode, every minimum counted, halves compared);
- references: :func:`temper_poses` (parallel tempering) and :func:`cluster_modes`.
"""

from digmat.ligand.checks import POSEBUSTERS_EXAMPLES, mols_at, posebusters_checks, posebusters_example
from digmat.ligand.energy import VinaPoseEnergy, pocket_radius_for_maps
from digmat.ligand.grid import GridMaps
from digmat.ligand.mode_energies import (
    LIGAND_CALCULATORS,
    ModeEnergyConfig,
    ModeWeights,
    RelaxedMode,
    check_ligand_calculator,
    ligand_calculator,
    reweight_samples,
    weigh_clustered_modes,
    weigh_modes,
)
from digmat.ligand.mining import MinedMinima, mine_minima, minima_populations
from digmat.ligand.modes import BindingModes, cluster_modes
from digmat.ligand.molecule import (
    PROTONATION_RULES,
    ProtonationRule,
    ligand_atoms,
    ligand_bonds,
    ligand_from_smiles,
    protonate,
    read_ligand,
)
from digmat.ligand.physics import bond_anomalies, complex_atoms, gfnff_calculator, ligand_slice, relax_ligand
from digmat.ligand.pocket import (BACKBONE_NAMES, XH_BOND_LENGTHS, Pocket, extract_pocket, read_protein, residue_charge,
                                  side_chain_atoms)
from digmat.ligand.pose import PoseSpace
from digmat.ligand.tempering import KB_KCAL, PoseSamples, TemperingConfig, temper_poses
from digmat.ligand.vina import VinaCalculator, VinaScore

__all__ = [
    "BACKBONE_NAMES",
    "BindingModes",
    "GridMaps",
    "KB_KCAL",
    "LIGAND_CALCULATORS",
    "MinedMinima",
    "ModeEnergyConfig",
    "ModeWeights",
    "POSEBUSTERS_EXAMPLES",
    "PROTONATION_RULES",
    "Pocket",
    "PoseSamples",
    "PoseSpace",
    "ProtonationRule",
    "RelaxedMode",
    "TemperingConfig",
    "VinaCalculator",
    "VinaPoseEnergy",
    "VinaScore",
    "XH_BOND_LENGTHS",
    "bond_anomalies",
    "check_ligand_calculator",
    "cluster_modes",
    "complex_atoms",
    "extract_pocket",
    "gfnff_calculator",
    "ligand_atoms",
    "ligand_bonds",
    "ligand_calculator",
    "ligand_from_smiles",
    "ligand_slice",
    "mine_minima",
    "minima_populations",
    "mols_at",
    "pocket_radius_for_maps",
    "posebusters_checks",
    "posebusters_example",
    "protonate",
    "read_ligand",
    "read_protein",
    "relax_ligand",
    "residue_charge",
    "reweight_samples",
    "side_chain_atoms",
    "temper_poses",
    "weigh_clustered_modes",
    "weigh_modes",
]
