"""Adsorption data engine: slabs, adsorbates and adsorption sites (OC20 conventions),
the reference site search and equilibrium datasets.

Tags: 0 subsurface (fixed), 1 surface, 2 adsorbate.  Lengths in Å, energies in eV,
temperatures in K.
"""

from digmat.adsorption.adsorbates import get_adsorbate, list_adsorbates, oc20_adsorbate_table
from digmat.adsorption.anharmonic import (
    BasinCorrection,
    anharmonic_corrections,
    anharmonic_probabilities,
    anharmonic_site_probabilities,
)
from digmat.adsorption.anomalies import AnomalyFlags, detect_anomalies
from digmat.adsorption.builder import BulkSpec, make_bulk, parse_bulk_spec
from digmat.adsorption.equilibrium import sample_equilibrium, write_equilibrium_dataset
from digmat.adsorption.placement import make_placements, place_adsorbate, surface_sites
from digmat.adsorption.reference import given_placements, recompute_vibrations, reference_search, relabel_sites
from digmat.adsorption.refine import Refinement, importance_weights, refine_sites
from digmat.adsorption.result import PlacementRecord, ReferenceMinimum, ReferenceResult
from digmat.adsorption.search_config import ExecutionConfig, SearchConfig
from digmat.adsorption.site_assignment import SiteAssigner
from digmat.adsorption.sites import (
    SITE_KINDS,
    SiteInfo,
    SlabSymmetry,
    classify_site,
    equivalent_site_key,
    group_equivalent_sites,
)
from digmat.adsorption.slabs import (
    build_slab,
    convert_ase_tags,
    fix_subsurface,
    infer_tags,
    read_slab,
    slab_heights,
    vacuum_gap,
    validate_slab,
)
from digmat.adsorption.thermo import (
    Vibrations,
    boltzmann_probabilities,
    finite_difference_hessian,
    harmonic_free_energy,
    site_multiplicity,
    symmetry_images,
    vibrational_analysis,
)

__all__ = [
    "SITE_KINDS",
    "BasinCorrection",
    "AnomalyFlags",
    "BulkSpec",
    "PlacementRecord",
    "ReferenceMinimum",
    "ReferenceResult",
    "SearchConfig",
    "ExecutionConfig",
    "Refinement",
    "SiteAssigner",
    "SiteInfo",
    "SlabSymmetry",
    "Vibrations",
    "anharmonic_corrections",
    "anharmonic_probabilities",
    "anharmonic_site_probabilities",
    "boltzmann_probabilities",
    "build_slab",
    "classify_site",
    "convert_ase_tags",
    "detect_anomalies",
    "equivalent_site_key",
    "finite_difference_hessian",
    "fix_subsurface",
    "given_placements",
    "importance_weights",
    "refine_sites",
    "get_adsorbate",
    "group_equivalent_sites",
    "harmonic_free_energy",
    "infer_tags",
    "list_adsorbates",
    "make_bulk",
    "make_placements",
    "oc20_adsorbate_table",
    "parse_bulk_spec",
    "place_adsorbate",
    "read_slab",
    "reference_search",
    "recompute_vibrations",
    "relabel_sites",
    "sample_equilibrium",
    "site_multiplicity",
    "slab_heights",
    "surface_sites",
    "symmetry_images",
    "vacuum_gap",
    "validate_slab",
    "vibrational_analysis",
    "write_equilibrium_dataset",
]
