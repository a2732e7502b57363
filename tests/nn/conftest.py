"""Shared fixtures for the network tests."""

from __future__ import annotations

import pytest
import torch
from ase import Atoms

from digmat.nn import GraphormerConfig
from digmat.testing import symmetry_test_structures


@pytest.fixture
def structures() -> dict[str, Atoms]:
    """Fresh slab (with adsorbate), tiny bulk cells and a molecule."""
    return symmetry_test_structures()


@pytest.fixture
def small_config() -> GraphormerConfig:
    """A fast configuration for behavioural tests."""
    return GraphormerConfig(num_layers=2, embed_dim=32, num_heads=4, ffn_dim=64, num_rbf=16,
                            cutoff=5.0, time_embed_dim=16, scalar_out=2)


@pytest.fixture(autouse=True)
def _seed_and_one_thread(one_thread):
    """Deterministic weights and one intra-op thread (the root conftest's ``one_thread``)."""
    torch.manual_seed(0)
