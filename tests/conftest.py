"""Shared pytest configuration: deterministic, single-threaded-friendly defaults."""

import os

import pytest
import torch

os.environ.setdefault("OMP_NUM_THREADS", "2")


@pytest.fixture(autouse=True)
def _seed_everything():
    torch.manual_seed(0)
    yield
