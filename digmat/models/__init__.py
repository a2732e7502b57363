"""Score models: a network from :mod:`digmat.nn` plus the map from its per-atom outputs to a
system's state (:mod:`digmat.systems`)."""

from .adsorption import AdsorptionModelConfig, AdsorptionScoreModel, adsorption_dsm_loss
from .peptide import PeptideModelConfig, PeptideScoreModel, peptide_dsm_loss
from .crystal import CrystalModelConfig, CrystalOutput, CrystalScoreModel
from .crystal_training import CrystalDataset, collate_crystals, crystal_denoising_profile, crystal_dsm_loss

__all__ = [
    "AdsorptionModelConfig",
    "AdsorptionScoreModel",
    "CrystalDataset",
    "CrystalModelConfig",
    "CrystalOutput",
    "CrystalScoreModel",
    "PeptideModelConfig",
    "PeptideScoreModel",
    "adsorption_dsm_loss",
    "collate_crystals",
    "crystal_denoising_profile",
    "crystal_dsm_loss",
    "peptide_dsm_loss",
]
