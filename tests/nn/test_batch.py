"""AtomsBatch: construction from ase.Atoms, validation, transforms."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ase import Atoms

from digmat.nn import AtomsBatch


def test_concatenates_systems(structures):
    systems = [structures["slab"], structures["bulk_triclinic"], structures["molecule"]]
    batch = AtomsBatch.from_atoms(systems)
    sizes = [len(a) for a in systems]
    assert batch.num_systems == 3 and batch.num_atoms == sum(sizes)
    assert batch.positions.dtype == torch.float32
    assert batch.natoms.tolist() == sizes
    assert batch.ptr.tolist() == [0, sizes[0], sizes[0] + sizes[1], sum(sizes)]
    assert batch.batch.tolist() == [k for k, n in enumerate(sizes) for _ in range(n)]
    assert batch.pbc.tolist() == [[True, True, False], [True] * 3, [False] * 3]
    assert batch.tags[: sizes[0]].tolist() == systems[0].get_tags().tolist()
    np.testing.assert_allclose(batch.cell[1].numpy(), systems[1].cell.array, rtol=1e-6)
    for original, back in zip(systems, batch.to_atoms()):
        np.testing.assert_allclose(back.positions, original.positions, atol=1e-5)
        assert (back.numbers == original.numbers).all() and (back.pbc == original.pbc).all()


def test_does_not_mutate_and_accepts_single_atoms(structures):
    slab = structures["slab"]
    before = slab.positions.copy()
    batch = AtomsBatch.from_atoms(slab, dtype=torch.float64)
    batch.positions.add_(1.0)
    np.testing.assert_array_equal(slab.positions, before)
    assert batch.dtype == torch.float64 and batch.num_systems == 1


def test_tag_override(structures):
    mol = structures["molecule"]
    batch = AtomsBatch.from_atoms([mol], tags=[np.full(len(mol), 2)])
    assert (batch.tags == 2).all()


def test_with_positions_keeps_metadata_and_gradients(structures):
    batch = AtomsBatch.from_atoms([structures["slab"], structures["molecule"]])
    pos = (batch.positions + 0.1).requires_grad_()
    moved = batch.with_positions(pos)
    assert moved.positions is pos
    assert torch.equal(moved.numbers, batch.numbers) and torch.equal(moved.cell, batch.cell)
    with pytest.raises(ValueError, match="shape"):
        batch.with_positions(pos[:-1])
    with pytest.raises(ValueError, match="NaN"):
        batch.with_positions(torch.full_like(batch.positions, float("nan")))


def test_to_casts_floats_only(structures):
    batch = AtomsBatch.from_atoms([structures["bulk_triclinic"]]).to(dtype=torch.float64)
    assert batch.positions.dtype == torch.float64 and batch.cell.dtype == torch.float64
    assert batch.numbers.dtype == torch.long and batch.pbc.dtype == torch.bool


@pytest.mark.parametrize("make, message", [
    (lambda: Atoms("H2", positions=[[0, 0, 0], [np.nan, 0, 0]]), "NaN"),
    (lambda: Atoms(numbers=[105], positions=[[0, 0, 0]]), "atomic numbers"),
    (lambda: Atoms("H", cell=[[3, 0, 0], [6, 0, 0], [0, 0, 3]], pbc=True), "singular"),
    (lambda: Atoms("H", cell=[3, 3, 0], pbc=True), "singular"),
    (lambda: Atoms(), "no atoms"),
])
def test_rejects_bad_input(make, message):
    with pytest.raises(ValueError, match=message):
        AtomsBatch.from_atoms([make()])


def test_rejects_bad_tags_and_empty_list(structures):
    mol = structures["molecule"]
    with pytest.raises(ValueError, match="non-negative"):
        AtomsBatch.from_atoms([mol], tags=[np.full(len(mol), -1)])
    with pytest.raises(ValueError, match="shape"):
        AtomsBatch.from_atoms([mol], tags=[np.zeros(2, dtype=int)])
    with pytest.raises(ValueError, match="at least one"):
        AtomsBatch.from_atoms([])


def test_zero_vacuum_vector_is_fine_for_slabs():
    slab = Atoms("Pt2", positions=[[0, 0, 0], [1.4, 1.4, 2.0]], cell=[[2.8, 0, 0], [0, 2.8, 0], [0, 0, 0]],
                 pbc=[True, True, False])
    assert AtomsBatch.from_atoms([slab]).num_atoms == 2


def test_concat_matches_building_at_once(structures):
    systems = [structures["slab"], structures["molecule"], structures["bulk_primitive"]]
    joined = AtomsBatch.concat([AtomsBatch.from_atoms(systems[:2]), AtomsBatch.from_atoms(systems[2:])])
    direct = AtomsBatch.from_atoms(systems)
    for name in ("positions", "numbers", "tags", "cell", "pbc", "batch", "natoms"):
        assert torch.equal(getattr(joined, name), getattr(direct, name)), name
    with pytest.raises(ValueError, match="at least one"):
        AtomsBatch.concat([])


def test_direct_construction_is_validated(structures):
    batch = AtomsBatch.from_atoms([structures["molecule"]])
    with pytest.raises(ValueError, match="torch.long"):
        AtomsBatch(batch.positions, batch.numbers.int(), batch.tags, batch.cell, batch.pbc,
                   batch.batch, batch.natoms)
    with pytest.raises(ValueError, match="natoms"):
        AtomsBatch(batch.positions, batch.numbers, batch.tags, batch.cell, batch.pbc,
                   batch.batch, batch.natoms + 1)
