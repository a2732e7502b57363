"""Adsorption data engine: slabs, adsorbates and adsorption sites (OC20 conventions).

Tags: 0 subsurface (fixed), 1 surface, 2 adsorbate.  Lengths in Å.
"""

from digmat.adsorption.adsorbates import get_adsorbate, list_adsorbates, oc20_adsorbate_table
from digmat.adsorption.builder import BulkSpec, make_bulk, parse_bulk_spec
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

__all__ = [
    "SITE_KINDS",
    "BulkSpec",
    "SiteInfo",
    "SlabSymmetry",
    "build_slab",
    "classify_site",
    "convert_ase_tags",
    "equivalent_site_key",
    "fix_subsurface",
    "get_adsorbate",
    "group_equivalent_sites",
    "infer_tags",
    "list_adsorbates",
    "make_bulk",
    "oc20_adsorbate_table",
    "parse_bulk_spec",
    "read_slab",
    "slab_heights",
    "vacuum_gap",
    "validate_slab",
]
