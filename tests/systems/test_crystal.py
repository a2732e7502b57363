import numpy as np
import pytest
import torch
from ase import Atoms
from ase.build import bulk
from scipy.spatial.transform import Rotation

from digmat.design.carbon24 import carbon_prototypes
from digmat.systems import CrystalStateConfig, CrystalSystem, canonical_cell
from digmat.systems.crystal import lattice_entries


def random_crystal(n=5, seed=0):
    """A triclinic carbon cell with n atoms at least 1.2 Å apart (generically chiral)."""
    rng = np.random.default_rng(seed)
    cell = np.diag([3.1, 3.6, 4.3]) + rng.normal(scale=0.5, size=(3, 3))
    while True:
        atoms = Atoms(f"C{n}", scaled_positions=rng.random((n, 3)), cell=cell, pbc=True)
        d = atoms.get_all_distances(mic=True) + 10 * np.eye(n)
        if d.min() > 1.2:
            return atoms


def structures():
    protos = {a.info["id"]: a for a in carbon_prototypes(rattled=1)}
    return {"diamond-cubic-rattled": protos["diamond-cubic-rattled0"], "graphite-AB": protos["graphite-AB"],
            "lonsdaleite-rattled": protos["lonsdaleite-rattled0"], "random": random_crystal()}


def equivalent_copy(atoms, seed):
    """Same crystal: another basis, permuted atoms, atoms moved by lattice vectors, rigidly moved and rotated."""
    rng = np.random.default_rng(seed)
    out = atoms[rng.permutation(len(atoms))]
    m = np.array([[1, 1, 0], [0, 1, 0], [-1, 0, 1]])  # unimodular, det 1
    out.set_cell(m @ out.cell.array, scale_atoms=False)
    out.positions += rng.integers(-2, 3, size=(len(out), 3)) @ out.cell.array
    out.positions += rng.normal(size=3)
    rot = Rotation.random(random_state=seed).as_matrix()
    out.positions = out.positions @ rot.T
    out.set_cell(out.cell.array @ rot.T, scale_atoms=False)
    return out


@pytest.mark.parametrize("name", list(structures()))
def test_equivalent_descriptions_give_the_same_state(name):
    atoms = structures()[name]
    system = CrystalSystem.for_atoms(atoms)
    x = system.to_state(atoms)
    for seed in range(3):
        torch.testing.assert_close(system.to_state(equivalent_copy(atoms, seed)), x, atol=1e-8, rtol=0)
    # a left-handed basis of the same lattice (M = -I) describes the same crystal
    flipped = atoms.copy()
    flipped.set_cell(-atoms.cell.array, scale_atoms=False)
    torch.testing.assert_close(system.to_state(flipped), x, atol=1e-8, rtol=0)


@pytest.mark.parametrize("name", list(structures()))
def test_round_trip_is_exact_up_to_rotation(name):
    atoms = structures()[name]
    system = CrystalSystem.for_atoms(atoms)
    x = system.to_state(atoms)
    back = system.to_atoms(x)[0]
    torch.testing.assert_close(system.to_state(back), x, atol=1e-9, rtol=0)
    assert back.get_volume() == pytest.approx(atoms.get_volume(), rel=1e-10)
    np.testing.assert_allclose(np.linalg.eigvalsh(back.cell.array @ back.cell.array.T),
                               np.linalg.eigvalsh(canonical_cell(atoms)[0] @ canonical_cell(atoms)[0].T), rtol=1e-10)
    # same sorted interatomic distances (images included) as the input; the metric is
    # symmetrised over lattice automorphisms found at 1e-4 relative tolerance (the prototypes'
    # hexagonal cells are hexagonal to ~1e-6 only)
    from ase.neighborlist import neighbor_list

    d0, d1 = (np.sort(neighbor_list("d", a, 4.0)) for a in (atoms, back))
    np.testing.assert_allclose(d1, d0, atol=1e-4 if "random" not in name else 1e-9)
    assert np.allclose(back.cell.array, back.cell.array.T)  # symmetric gauge


def test_different_crystals_give_different_states():
    atoms = random_crystal()
    system = CrystalSystem.for_atoms(atoms)
    x = system.to_state(atoms)
    mirror = atoms.copy()
    mirror.positions[:, 0] *= -1
    mirror.set_cell(atoms.cell.array * [-1, 1, 1], scale_atoms=False)
    assert (system.to_state(mirror) - x).abs().max() > 1e-3  # enantiomers differ
    moved = atoms.copy()
    moved.positions[0] += [0.05, 0, 0]
    assert (system.to_state(moved) - x).abs().max() > 1e-3


def test_state_space_and_noise_scale():
    config = CrystalStateConfig(volume_per_atom=6.0, lattice_scale=0.2, length_scale=0.8)
    system = CrystalSystem([6] * 8, config)
    assert system.dim == 30 and system.space.shape == (30,)
    mask = system.space.torus_mask()
    assert mask[:24].all() and not mask[24:].any()
    scale = system.space.torus_scale(torch.zeros(30, dtype=torch.float64))
    torch.testing.assert_close(scale[:24], torch.full((24,), 0.8 / (8 * 6.0) ** (1 / 3), dtype=torch.float64))
    # positional noise in Å is the same for a small and a large cell at equal density
    big = CrystalSystem([6] * 64, config)
    s_big = big.space.torus_scale(torch.zeros(big.dim, dtype=torch.float64))[0] * big.reference_length
    assert float(s_big) == pytest.approx(float(scale[0]) * system.reference_length)


def test_lattice_entries_control_volume_and_are_differentiable():
    system = CrystalSystem([6] * 4, CrystalStateConfig(volume_per_atom=6.0, lattice_scale=0.2))
    g = torch.Generator().manual_seed(0)
    x = system.space.sample_prior(3, generator=g, dtype=torch.float64).requires_grad_(True)
    _, cell = system.structure(x)
    logv = torch.linalg.det(cell).log()
    (grad,) = torch.autograd.grad(logv.sum(), x)
    # log V = tr S = log(N v0) + lattice_scale * (z_11 + z_22 + z_33) with zero mean
    torch.testing.assert_close(grad[:, 12:15], torch.full((3, 3), 0.2, dtype=torch.float64))
    torch.testing.assert_close(grad[:, 15:], torch.zeros(3, 3, dtype=torch.float64), atol=1e-12, rtol=0)
    torch.testing.assert_close(grad[:, :12], torch.zeros(3, 12, dtype=torch.float64), atol=1e-12, rtol=0)
    # zero lattice entries decode to a cube of volume N v0
    z = torch.zeros(1, system.dim, dtype=torch.float64)
    torch.testing.assert_close(system.structure(z)[1][0], torch.eye(3, dtype=torch.float64) * 24.0 ** (1 / 3))


def test_fit_and_torch_lattice_entries():
    protos = carbon_prototypes(rattled=1)
    config = CrystalStateConfig.fit(protos)
    vpa = np.array([a.get_volume() / len(a) for a in protos])
    assert config.volume_per_atom == pytest.approx(np.exp(np.log(vpa).mean()))
    lat = torch.cat([CrystalSystem.for_atoms(a, config).to_state(a)[:, -6:] for a in protos])
    torch.testing.assert_close(lat.mean(0), torch.zeros(6, dtype=torch.float64), atol=1e-9, rtol=0)
    assert float(lat.pow(2).mean()) == pytest.approx(1.0)
    # the torch twin gives the same entries for the canonical cell in any orientation
    a = protos[3]
    cell = canonical_cell(a)[0] @ Rotation.random(random_state=1).as_matrix().T
    z = lattice_entries(torch.tensor(cell)[None], torch.tensor([len(a)]), config)
    torch.testing.assert_close(z, CrystalSystem.for_atoms(a, config).to_state(a)[:, -6:], atol=1e-10, rtol=0)


def test_bad_inputs_are_refused():
    system = CrystalSystem([6] * 2)
    with pytest.raises(ValueError, match="periodic"):
        system.to_state(Atoms("C2", positions=[[0, 0, 0], [1.4, 0, 0]], cell=[5, 5, 5], pbc=[True, True, False]))
    with pytest.raises(ValueError, match="composition"):
        system.to_state(bulk("Si", "diamond", a=5.43))
    with pytest.raises(ValueError, match="singular"):
        system.to_state(Atoms("C2", positions=[[0, 0, 0], [1, 0, 0]], cell=[[1, 0, 0], [2, 0, 0], [0, 0, 1]], pbc=True))
    with pytest.raises(ValueError):
        CrystalSystem([])
    with pytest.raises(ValueError):
        CrystalStateConfig(lattice_scale=0.0)
    with pytest.raises(ValueError, match="shape"):
        system.structure(torch.zeros(1, 5, dtype=torch.float64))
