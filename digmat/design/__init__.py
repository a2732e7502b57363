"""Band-gap-guided design of carbon structures: the tight-binding band-gap oracle and
structure-collection loading/de-duplication.

:mod:`digmat.design.tightbinding`: the Xu–Wang–Chan–Ho (1992) sp³ carbon tight-binding
model and band structures; :mod:`digmat.design.bandgap`: its band gaps (eV), one structure or
many.  :mod:`digmat.design.structures`: readers for
CDVAE CSV / extxyz / ASE db / CIF folders, Niggli reduction and StructureMatcher-based
de-duplication.  :mod:`digmat.design.carbon24`: the shipped Carbon-24 split.
:mod:`digmat.design.predictor`: a differentiable matgl M3GNet band-gap predictor.
:mod:`digmat.design.generate`: unguided and band-gap-guided crystal sampling.
:mod:`digmat.design.evaluate`: validity, StructureMatcher match rates, uniqueness, novelty,
space groups.  Lengths in Å, energies in eV; inputs are never modified.
"""

from digmat.design.carbon24 import carbon_prototypes, find_carbon24_dir, load_carbon24
from digmat.design.evaluate import LOOSE, STRICT, Matcher, evaluate_samples, is_valid, nn_distance_quantiles, plot_gap_histograms, sp3_share, space_group
from digmat.design.generate import GapGuidance, SampleConfig, SamplerConfig, gap_function, restart_crystals, sample_crystals, train_crystal_model
from digmat.design.predictor import BandGapPredictor, FitConfig, default_m3gnet, fit_predictor

from digmat.design.structures import (
    DistinctGroups,
    distinct_structures,
    niggli_reduce,
    read_ase_db,
    read_cdvae_csv,
    read_cif_folder,
    read_extxyz,
    read_structures,
)
from digmat.design.bandgap import BandGap, TightBindingGap, band_gap
from digmat.design.tightbinding import (
    XU_CARBON,
    CarbonTightBinding,
    XuCarbonParameters,
    carbon_band_structure,
    hopping_scaling,
    kmesh,
    kpts_from_density,
    slater_koster_blocks,
    tail_coefficients,
)

__all__ = [
    "LOOSE",
    "STRICT",
    "XU_CARBON",
    "BandGap",
    "BandGapPredictor",
    "CarbonTightBinding",
    "DistinctGroups",
    "FitConfig",
    "GapGuidance",
    "Matcher",
    "SampleConfig",
    "SamplerConfig",
    "TightBindingGap",
    "carbon_prototypes",
    "default_m3gnet",
    "evaluate_samples",
    "find_carbon24_dir",
    "fit_predictor",
    "gap_function",
    "is_valid",
    "load_carbon24",
    "nn_distance_quantiles",
    "plot_gap_histograms",
    "restart_crystals",
    "sample_crystals",
    "sp3_share",
    "space_group",
    "train_crystal_model",
    "XuCarbonParameters",
    "band_gap",
    "carbon_band_structure",
    "distinct_structures",
    "hopping_scaling",
    "kmesh",
    "kpts_from_density",
    "niggli_reduce",
    "read_ase_db",
    "read_cdvae_csv",
    "read_cif_folder",
    "read_extxyz",
    "read_structures",
    "slater_koster_blocks",
    "tail_coefficients",
]
