"""digmat.testing: every helper must catch a deliberately broken function and pass the network."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.calculators.lj import LennardJones
from ase.geometry import get_distances

from digmat.nn import AtomsBatch, GraphormerConfig, PeriodicGraphormer
from digmat.testing import (
    assert_equivariant,
    assert_lattice_image_invariant,
    assert_permutation_equivariant,
    assert_rotation_equivariant,
    assert_supercell_consistent,
    assert_translation_invariant,
    model_fn,
    symmetry_test_structures,
)

TOL = {"atol": 1e-5, "rtol": 1e-5}
STRUCTURES = symmetry_test_structures()


pytestmark = pytest.mark.usefixtures("one_thread")


def structure(name: str) -> Atoms:
    return STRUCTURES[name].copy()


# ----------------------------------------------------------------- broken functions
def absolute_positions(atoms: Atoms) -> np.ndarray:
    """Rotates correctly but is not translation invariant."""
    return atoms.positions.copy()


def constant_vector(atoms: Atoms) -> np.ndarray:
    """Translation invariant but ignores rotations."""
    return np.tile([1.0, 0.0, 0.0], (len(atoms), 1))


def index_weighted(atoms: Atoms) -> np.ndarray:
    """E(3) equivariant but depends on the atom order: v_i = sum_j j (r_j - r_i)."""
    w = np.arange(len(atoms), dtype=float)[:, None]
    return (w * atoms.positions).sum(0) - w.sum() * atoms.positions


def centred_positions(atoms: Atoms) -> np.ndarray:
    """r_i - centroid: E(3) and permutation equivariant, but sees wrapped atoms move."""
    return atoms.positions - atoms.positions.mean(axis=0)


def min_image_density(atoms: Atoms) -> np.ndarray:
    """sum_j exp(-d_ij^2) over minimum images only: wrong for cells smaller than the range."""
    _, d = get_distances(atoms.positions, cell=atoms.cell, pbc=atoms.pbc)
    return np.exp(-(d / 3.0) ** 2).sum(axis=1)


def lj_forces(atoms: Atoms) -> np.ndarray:
    """A correct reference: Lennard-Jones forces with all periodic images (ase)."""
    atoms = atoms.copy()
    atoms.calc = LennardJones(sigma=2.0, epsilon=0.1, rc=4.5, smooth=True)
    return atoms.get_forces()


# ---------------------------------------------------------------- helpers catch bugs
def test_translation_check_fails_on_absolute_positions():
    atoms = structure("slab")
    assert_rotation_equivariant(absolute_positions, atoms, **TOL)   # rotation alone is fine
    with pytest.raises(AssertionError, match="translation invariance violated.*at atom"):
        assert_translation_invariant(absolute_positions, atoms, **TOL)


@pytest.mark.parametrize("name", ["slab", "bulk_triclinic", "molecule"])
def test_rotation_check_fails_on_constant_vector(name):
    atoms = structure(name)
    assert_translation_invariant(constant_vector, atoms, **TOL)
    with pytest.raises(AssertionError, match="rotation equivariance violated"):
        assert_rotation_equivariant(constant_vector, atoms, **TOL)


def test_slab_rotation_is_about_the_surface_normal():
    # A vector along the surface normal is invariant under the slab rotation only.
    atoms = structure("slab")
    def normal(a: Atoms) -> np.ndarray:
        return np.tile([0.0, 0.0, 1.0], (len(a), 1))

    assert_rotation_equivariant(normal, atoms, **TOL)
    with pytest.raises(AssertionError):
        assert_rotation_equivariant(normal, atoms, axis=[1.0, 0.0, 0.0], **TOL)


def test_rotation_check_treats_norms_as_invariants():
    def norms(a: Atoms) -> np.ndarray:
        return np.linalg.norm(index_weighted(a), axis=1)

    assert_rotation_equivariant(norms, structure("molecule"), **TOL)


def test_permutation_check_fails_on_order_dependence():
    atoms = structure("molecule")
    assert_rotation_equivariant(index_weighted, atoms, **TOL)
    assert_translation_invariant(index_weighted, atoms, **TOL)
    with pytest.raises(AssertionError, match="permutation equivariance violated"):
        assert_permutation_equivariant(index_weighted, atoms, **TOL)


@pytest.mark.parametrize("name", ["slab", "bulk_triclinic"])
def test_lattice_image_check_fails_on_unwrapped_geometry(name):
    atoms = structure(name)
    assert_permutation_equivariant(centred_positions, atoms, **TOL)
    with pytest.raises(AssertionError, match="lattice-image invariance violated"):
        assert_lattice_image_invariant(centred_positions, atoms, **TOL)


@pytest.mark.parametrize("name", ["bulk_primitive", "bulk_triclinic"])
def test_supercell_check_fails_on_minimum_image(name):
    atoms = structure(name)
    assert_lattice_image_invariant(min_image_density, atoms, **TOL)
    assert_permutation_equivariant(min_image_density, atoms, **TOL)
    with pytest.raises(AssertionError, match=r"supercell \(2, 2, 1\) consistency violated"):
        assert_supercell_consistent(min_image_density, atoms, **TOL)


def test_supercell_extensive_scalars():
    atoms = structure("bulk_triclinic")
    def total(a: Atoms) -> np.ndarray:          # an extensive quantity
        return np.asarray(float(len(a)))

    assert_supercell_consistent(total, atoms, extensive=True, **TOL)
    with pytest.raises(AssertionError):
        assert_supercell_consistent(total, atoms, extensive=False, **TOL)


@pytest.mark.parametrize("name", ["slab", "bulk_triclinic", "molecule"])
def test_reference_forces_pass_every_check(name):
    assert_equivariant(lj_forces, structure(name), **TOL)


def test_helpers_reject_meaningless_requests():
    mol = structure("molecule")
    with pytest.raises(ValueError, match="periodic"):
        assert_lattice_image_invariant(centred_positions, mol)
    with pytest.raises(ValueError, match="non-periodic axis"):
        assert_supercell_consistent(min_image_density, structure("slab"), repeat=(1, 1, 2))
    with pytest.raises(ValueError, match="kind"):
        assert_translation_invariant(centred_positions, mol, kind="tensor")


def test_helpers_do_not_mutate_input():
    atoms = structure("slab")
    before = atoms.positions.copy(), atoms.cell.array.copy()
    assert_equivariant(centred_positions, atoms, atol=1e9)   # huge tolerance: just run
    np.testing.assert_array_equal(atoms.positions, before[0])
    np.testing.assert_array_equal(atoms.cell.array, before[1])


# ------------------------------------------------------------------ the network passes
@pytest.fixture(scope="module")
def network() -> PeriodicGraphormer:
    torch.manual_seed(0)
    return PeriodicGraphormer(GraphormerConfig(scalar_pool="none"))   # default size, 6 Å cutoff


@pytest.mark.parametrize("name", ["slab", "bulk_triclinic", "molecule"])
def test_network_vectors_pass_every_check(network, name):
    fn = model_fn(network, dtype=torch.float64)
    atoms = structure(name)
    out = fn(atoms)
    assert np.abs(out).max() > 1e-3, "vectors vanish: the check would be vacuous"
    ran = assert_equivariant(fn, atoms, **TOL)
    assert ("supercell" in ran) == (name != "molecule")


@pytest.mark.parametrize("name", ["slab", "bulk_primitive", "bulk_triclinic", "molecule"])
def test_network_atom_scalars_pass_every_check(network, name):
    assert_equivariant(model_fn(network, output="scalars"), structure(name), **TOL)


@pytest.mark.parametrize("name", ["bulk_primitive", "bulk_triclinic"])
def test_small_cells_need_several_image_shells(network, name):
    nb = network.neighbors(AtomsBatch.from_atoms([structure(name)]))
    assert int(nb.image_shells.min()) >= 2
    assert int(nb.shifts.abs().max()) >= 2          # edges to second-shell images exist


def test_model_fn_leaves_model_untouched(network):
    dtype = next(network.parameters()).dtype
    model_fn(network, dtype=torch.float64)(structure("molecule"))
    assert next(network.parameters()).dtype == dtype


def test_bulk_rotation_can_be_about_any_axis(network):
    fn = model_fn(network)
    assert_rotation_equivariant(fn, structure("bulk_triclinic"), axis=[0.3, -1.0, 2.0], seed=3,
                                **TOL)
