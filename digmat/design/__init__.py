"""Band-gap-guided design of carbon structures: the tight-binding band-gap oracle and
structure-collection loading/de-duplication.

:mod:`digmat.design.tightbinding`: the Xu–Wang–Chan–Ho (1992) sp³ carbon tight-binding
model, band structures and band gaps (eV).  :mod:`digmat.design.structures`: readers for
CDVAE CSV / extxyz / ASE db / CIF folders, Niggli reduction and StructureMatcher-based
de-duplication.  Lengths in Å, energies in eV; inputs are never modified.
"""

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
from digmat.design.tightbinding import (
    XU_CARBON,
    BandGap,
    CarbonTightBinding,
    TightBindingGap,
    XuCarbonParameters,
    band_gap,
    carbon_band_structure,
    hopping_scaling,
    kmesh,
    kpts_from_density,
    slater_koster_blocks,
    tail_coefficients,
)

__all__ = [
    "XU_CARBON",
    "BandGap",
    "CarbonTightBinding",
    "DistinctGroups",
    "TightBindingGap",
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
