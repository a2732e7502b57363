"""Periodic Graphormer score network (DiG) for molecules, slabs and crystals.

Public API
----------
AtomsBatch
    Batched systems as tensors, built from ``ase.Atoms``.
GraphormerConfig
    Frozen hyper-parameter dataclass.
PeriodicGraphormer, GraphormerOutput
    The network and its output.
periodic_neighbors, Neighbors
    Vectorised lattice-image neighbour search.
"""

from digmat.nn.batch import AtomsBatch
from digmat.nn.config import GraphormerConfig
from digmat.nn.graphormer import GraphormerOutput, PeriodicGraphormer
from digmat.nn.neighbors import Neighbors, periodic_neighbors

__all__ = [
    "AtomsBatch",
    "GraphormerConfig",
    "GraphormerOutput",
    "Neighbors",
    "PeriodicGraphormer",
    "periodic_neighbors",
]
