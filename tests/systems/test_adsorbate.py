import numpy as np
import pytest
import torch
from ase.build import add_adsorbate, fcc111, fcc211
from scipy.spatial.transform import Rotation

from digmat.adsorption import convert_ase_tags, get_adsorbate, infer_tags
from digmat.systems import AdsorbateStateConfig, AdsorbateSystem


def pt111(size=(3, 3, 4)):
    return convert_ase_tags(fcc111("Pt", size, vacuum=8.0))


def random_states(system, n, seed=0):
    g = torch.Generator().manual_seed(seed)
    return system.space.wrap(0.4 * system.space.sample_prior(n, generator=g, dtype=torch.float64))


@pytest.mark.parametrize("relax_surface", [False, True])
def test_round_trip_and_lattice_translations(relax_surface):
    system = AdsorbateSystem(pt111(), get_adsorbate("CH3CO"), config=AdsorbateStateConfig(relax_surface=relax_surface))
    assert system.space.torus_mask().nonzero().ravel().tolist() == [0, 1]
    x = random_states(system, 4)
    configs = system.to_atoms(x)
    assert all((c.get_tags() == system.tags).all() for c in configs)
    torch.testing.assert_close(system.space.difference(system.to_state(configs), x), torch.zeros_like(x), atol=1e-10, rtol=0)
    # translate the adsorbate by a lattice vector and the whole system by an arbitrary vector
    moved = configs[0].copy()
    moved.positions[-6:] += 2 * moved.cell[0] - moved.cell[1]
    moved.positions += [0.37, -1.2, 2.5]
    torch.testing.assert_close(system.space.difference(system.to_state(moved), x[:1]), torch.zeros_like(x[:1]), atol=1e-10, rtol=0)


def test_state_matches_ase_site_geometry():
    """An O placed by ASE 1.2 Å above the fcc hollow of Pt(111) has height 1.2 Å and the fcc fractional position."""
    slab = fcc111("Pt", (2, 2, 3), vacuum=8.0)
    add_adsorbate(slab, "O", 1.2, "fcc")
    slab = infer_tags(slab)
    system = AdsorbateSystem(slab, get_adsorbate("O"), config=AdsorbateStateConfig(height_offset=1.5))
    x = system.to_state(slab)
    assert float(x[0, 2]) == pytest.approx(1.2 - 1.5, abs=1e-9)
    frac = np.linalg.solve(slab.cell.array[:2, :2].T, slab.positions[-1, :2])
    np.testing.assert_allclose(x[0, :2].numpy(), np.mod(frac, 1.0), atol=1e-9)
    # noise scale: torus noise in Å equals the Euclidean noise at every t
    lengths = np.linalg.norm(slab.cell.array[:2], axis=1)
    np.testing.assert_allclose(system.space.torus_scale(x[0])[:2].numpy() * lengths, [1.0, 1.0])


def test_rotation_about_the_normal_keeps_torus_and_height_entries():
    slab = pt111()
    ads = get_adsorbate("OH")
    system = AdsorbateSystem(slab, ads)
    config = system.to_atoms(random_states(system, 1))[0]
    rot = Rotation.from_euler("z", 37.0, degrees=True)
    config_r = config.copy()
    config_r.positions = rot.apply(config.positions)
    config_r.cell = rot.apply(config.cell.array)
    slab_r = slab.copy()
    slab_r.positions = rot.apply(slab.positions)
    slab_r.cell = rot.apply(slab.cell.array)
    system_r = AdsorbateSystem(slab_r, ads)
    x, xr = system.to_state(config), system_r.to_state(config_r)
    d = system.space.difference(xr, x)
    torch.testing.assert_close(d[:, :3], torch.zeros(1, 3, dtype=torch.float64), atol=1e-9, rtol=0)
    np.testing.assert_allclose(xr[0, 3:].numpy(), rot.apply(x[0, 3:].numpy().reshape(-1, 3)).ravel(), atol=1e-9)


def test_stepped_surface_and_errors():
    slab = infer_tags(fcc211("Pt", (3, 3, 4), vacuum=8.0))
    system = AdsorbateSystem(slab, get_adsorbate("CO"))
    x = random_states(system, 3)
    torch.testing.assert_close(system.space.difference(system.to_state(system.to_atoms(x)), x), torch.zeros_like(x), atol=1e-10, rtol=0)
    with pytest.raises(ValueError, match="anchor"):
        AdsorbateSystem(slab, get_adsorbate("CO"), anchor=5)
    with pytest.raises(ValueError, match="does not match"):
        system.to_state(AdsorbateSystem(slab, get_adsorbate("OH")).to_atoms(torch.zeros(1, 6, dtype=torch.float64))[0])
    bulk_like = slab.copy()
    bulk_like.cell[2] = [0, 0, slab.positions[:, 2].max() - slab.positions[:, 2].min() + 1.0]
    with pytest.raises(ValueError, match="vacuum"):
        AdsorbateSystem(bulk_like, get_adsorbate("CO"))
