"""Shared geometry helpers against hand-computed answers."""

from __future__ import annotations

import numpy as np
import pytest
from ase.build import fcc111
from ase.geometry import permute_axes

from digmat.geometry import vacuum_gap


@pytest.mark.parametrize("axis", [0, 1, 2])
def test_vacuum_gap_along_any_axis(axis):
    """A 4-layer Pt(111) slab with 2 × 7 Å vacuum: the gap along c is 14 Å, whichever cell
    vector c is moved to; along the in-plane vectors the largest gap is an interatomic one."""
    slab = fcc111("Pt", (2, 2, 4), vacuum=7.0, a=3.92)
    order = {2: [0, 1, 2], 0: [2, 0, 1], 1: [1, 2, 0]}[axis]
    moved = permute_axes(slab, order)
    assert vacuum_gap(moved, axis).width == pytest.approx(14.0, abs=1e-6)
    for other in {0, 1, 2} - {axis}:
        assert vacuum_gap(moved, other).width < 3.0
    layer_spacing = 3.92 / np.sqrt(3)
    assert vacuum_gap(slab).spacing == pytest.approx(14.0 + 3 * layer_spacing, abs=1e-6)
