"""Lattice-image neighbour search, checked against ase.neighborlist."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.build import bulk, fcc111
from ase.neighborlist import neighbor_list

from digmat.nn import AtomsBatch, periodic_neighbors
from digmat.nn.neighbors import complete_cell


def search(batch: AtomsBatch, cutoff: float):
    return periodic_neighbors(batch.positions, batch.cell, batch.pbc, batch.batch, batch.natoms,
                              cutoff)


def assert_matches_ase(systems: list[Atoms], cutoff: float) -> None:
    batch = AtomsBatch.from_atoms(systems, dtype=torch.float64)
    nb = search(batch, cutoff)
    recv, send = nb.receivers.numpy(), nb.senders.numpy()
    dist, shifts = nb.distances.numpy(), nb.shifts.numpy()
    is_self = (recv == send) & (shifts == 0).all(axis=1)
    assert is_self.sum() == batch.num_atoms                     # exactly one self-edge per atom
    assert np.allclose(dist[is_self], 0.0)
    # Each displacement is r_j + n @ cell - r_i with the stored integer shift.
    cell = batch.cell.numpy()[batch.batch.numpy()[recv]]
    pos = batch.positions.numpy()
    expect = pos[send] - pos[recv] + np.einsum("ei,eij->ej", shifts, cell)
    np.testing.assert_allclose(nb.vectors.numpy(), expect, atol=1e-10)
    np.testing.assert_allclose(np.linalg.norm(expect, axis=1), dist, atol=1e-10)
    # Same neighbours per atom as ASE (which omits the self-edge).
    offset = 0
    for atoms in systems:
        i_ref, d_ref = neighbor_list("id", atoms, cutoff)
        for a in range(len(atoms)):
            ours = np.sort(dist[(recv == offset + a) & ~is_self])
            ref = np.sort(d_ref[i_ref == a])
            assert ours.shape == ref.shape, f"atom {a}: {ours.shape[0]} vs ASE {ref.shape[0]} neighbours"
            np.testing.assert_allclose(ours, ref, atol=1e-9)
        offset += len(atoms)
    pbc = batch.pbc[batch.batch[nb.receivers]]
    assert (nb.shifts[~pbc] == 0).all()                         # no images along vacuum


def triclinic_unwrapped() -> Atoms:
    rng = np.random.default_rng(1)
    cell = np.array([[3.1, 0.2, 0.1], [1.4, 2.9, -0.3], [0.7, -1.1, 3.4]])
    atoms = Atoms("Pt2O", scaled_positions=rng.random((3, 3)), cell=cell, pbc=True)
    atoms.positions += np.array([[10, -20, 0], [0, 0, 0], [-3, 4, 40]]) @ cell   # far outside
    return atoms


def test_bulk_primitive_needs_several_shells():
    atoms = bulk("Pt", "fcc", a=3.92)
    assert_matches_ase([atoms], 6.0)
    nb = search(AtomsBatch.from_atoms([atoms]), 6.0)
    # plane spacing of the fcc primitive cell is a / sqrt(3) = 2.26 Å → ceil(6 / 2.26) = 3
    assert nb.image_shells.tolist() == [[3, 3, 3]]
    assert int(nb.shifts.abs().max()) >= 2


def test_slab_triclinic_molecule_and_wire_in_one_batch(structures):
    wire = Atoms("Pt2", positions=[[0, 0, 0], [1.2, 0.3, 0.1]], cell=[2.5, 0, 0], pbc=[True, False, False])
    rattled = fcc111("Pt", (3, 2, 3), vacuum=7.0, orthogonal=False)
    rattled.rattle(0.2, seed=3)
    systems = [structures["slab"], triclinic_unwrapped(), structures["molecule"], wire, rattled,
               bulk("Pt", "fcc", a=3.92, cubic=True).repeat((2, 1, 1))]
    assert_matches_ase(systems, 5.5)


def test_cutoff_smaller_than_bonds_leaves_only_self_edges(structures):
    batch = AtomsBatch.from_atoms([structures["bulk_primitive"]])
    nb = search(batch, 1.0)
    assert nb.num_edges == 1 and int(nb.senders[0]) == 0 and nb.shifts.abs().sum() == 0


def test_wrapping_an_atom_changes_shifts_not_displacements(structures):
    atoms = structures["bulk_triclinic"]
    moved = atoms.copy()
    moved.positions[1] += np.array([2, -1, 3]) @ atoms.cell.array
    a = search(AtomsBatch.from_atoms([atoms], dtype=torch.float64), 6.0)
    b = search(AtomsBatch.from_atoms([moved], dtype=torch.float64), 6.0)
    def key(nb):
        return np.lexsort(np.round(nb.vectors.numpy(), 8).T[::-1])

    np.testing.assert_allclose(a.vectors.numpy()[key(a)], b.vectors.numpy()[key(b)], atol=1e-9)
    assert not torch.equal(a.shifts, b.shifts)


def test_complete_cell_is_orthonormal_off_the_periodic_axes():
    cell = torch.tensor([[[2.8, 0.0, 0.0], [1.4, 2.4, 0.0], [0.0, 0.0, 0.0]],
                         [[0.0, 0.0, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]]], dtype=torch.float64)
    pbc = torch.tensor([[True, True, False], [False, False, False]])
    full = complete_cell(cell, pbc)
    torch.testing.assert_close(full[0, :2], cell[0, :2])
    assert abs(float(full[0, 2] @ full[0, 0])) < 1e-12 and abs(float(full[0, 2].norm()) - 1) < 1e-12
    torch.testing.assert_close(full[1] @ full[1].T, torch.eye(3, dtype=torch.float64))


def test_differentiable_in_positions_and_cell(structures):
    batch = AtomsBatch.from_atoms([structures["bulk_triclinic"]], dtype=torch.float64)
    shifts = search(batch, 4.0).shifts        # fix the graph, vary the geometry

    def distances(pos, cell):
        nb = search(batch.with_positions(pos).with_cell(cell), 4.0)
        assert torch.equal(nb.shifts, shifts)
        return nb.distances

    pos = batch.positions.clone().requires_grad_()
    cell = batch.cell.clone().requires_grad_()
    assert torch.autograd.gradcheck(distances, (pos, cell))   # includes the zero-length self-edge


def test_scales_to_a_few_hundred_atoms():
    atoms = bulk("Pt", "fcc", a=3.92, cubic=True).repeat((4, 4, 4))   # 256 atoms
    atoms.rattle(0.05, seed=0)
    nb = search(AtomsBatch.from_atoms([atoms, atoms]), 6.0)
    i_ref = neighbor_list("i", atoms, 6.0)
    assert nb.num_edges == 2 * (len(i_ref) + len(atoms))


def test_rejects_bad_cutoff(structures):
    with pytest.raises(ValueError, match="cutoff"):
        search(AtomsBatch.from_atoms([structures["molecule"]]), 0.0)
