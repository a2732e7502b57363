"""Data engine storage: OC20-format LMDB datasets and packaged data tables.

``oc20_adsorbates.json`` (package data) is OC20's adsorbate table, read by
:mod:`digmat.adsorption.adsorbates`.
"""

from digmat.data.lmdb import LmdbDataset, write_lmdb
from digmat.data.records import atoms_to_record, load_record, record_to_atoms

__all__ = ["LmdbDataset", "atoms_to_record", "load_record", "record_to_atoms", "write_lmdb"]
