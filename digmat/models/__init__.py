"""Score models: a network from :mod:`digmat.nn` plus the map from its per-atom outputs to a
system's state (:mod:`digmat.systems`)."""

from .adsorption import AdsorptionModelConfig, AdsorptionScoreModel, adsorption_dsm_loss

__all__ = ["AdsorptionModelConfig", "AdsorptionScoreModel", "adsorption_dsm_loss"]
