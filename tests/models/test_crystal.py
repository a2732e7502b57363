from dataclasses import replace

import numpy as np
import pytest
import torch

from digmat.checkpoint import save_checkpoint
from digmat.design.carbon24 import carbon_prototypes
from digmat.models import CrystalDataset, CrystalModelConfig, CrystalScoreModel, collate_crystals, crystal_dsm_loss
from digmat.nn import AtomsBatch, GraphormerConfig
from digmat.nn.painn import PaiNNConfig
from digmat.systems import CrystalStateConfig
from digmat.testing import (
    assert_lattice_image_invariant,
    assert_permutation_equivariant,
    assert_rotation_equivariant,
    assert_translation_invariant,
)
from tests.systems.test_crystal import random_crystal


ARCHITECTURES = ("graphormer", "painn")


def tiny_model(seed=0, architecture="graphormer", **kw):
    torch.manual_seed(seed)
    if architecture == "painn":
        net = PaiNNConfig(num_layers=2, hidden=16, num_rbf=12, cutoff=4.0, scalar_out=8)
    else:
        net = GraphormerConfig(num_layers=2, embed_dim=32, num_heads=4, ffn_dim=64, num_rbf=16, cutoff=4.0, num_tags=1, scalar_out=8, scalar_pool="none")
    state = CrystalStateConfig(volume_per_atom=6.3, lattice_scale=0.17, lattice_mean=(-0.4, 0.05, 0.4, 0.0, 0.0, 0.0))
    return CrystalScoreModel(CrystalModelConfig(network=net, state=state, architecture=architecture, **kw)).double().eval()


def structures():
    protos = {a.info["id"]: a for a in carbon_prototypes(rattled=1, seed=3)}
    return [protos["diamond-cubic-rattled0"], protos["lonsdaleite-rattled0"], random_crystal(5, seed=2)]


def output_fn(model, field, t=0.3):
    def fn(atoms):
        batch = AtomsBatch.from_atoms([atoms], dtype=torch.float64)
        with torch.no_grad():
            out = model.outputs(batch, torch.tensor([t], dtype=torch.float64))
        return getattr(out, field).numpy()[0] if field == "lattice_eps" else getattr(out, field).numpy()

    return fn


@pytest.mark.parametrize("architecture", ARCHITECTURES)
@pytest.mark.parametrize("k", range(3))
def test_symmetries_with_digmat_testing(k, architecture):
    model = tiny_model(architecture=architecture)
    atoms = structures()[k]
    for field, kind in (("frac_eps", "atom_scalar"), ("lattice_eps", "system_scalar"), ("vectors", "vector")):
        fn = output_fn(model, field)
        assert_rotation_equivariant(fn, atoms, kind=kind, atol=1e-8, rtol=1e-7)
        assert_permutation_equivariant(fn, atoms, kind=kind, atol=1e-8, rtol=1e-7)
        assert_translation_invariant(fn, atoms, kind=kind, atol=1e-8, rtol=1e-7)
        assert_lattice_image_invariant(fn, atoms, kind=kind, atol=1e-8, rtol=1e-7)
    # the lattice tensor T rotates as a rank-2 tensor
    from scipy.spatial.transform import Rotation

    rot = Rotation.random(random_state=k).as_matrix()
    moved = atoms.copy()
    moved.positions = atoms.positions @ rot.T
    moved.set_cell(atoms.cell.array @ rot.T, scale_atoms=False)
    t0, t1 = (output_fn(model, "lattice_tensor")(a)[0] for a in (atoms, moved))
    np.testing.assert_allclose(t1, rot @ t0 @ rot.T, atol=1e-9)


def test_symmetry_checks_are_sensitive():
    """A frame-dependent output (the raw Cartesian vectors) fails the rotation check the fractional eps passes."""
    model = tiny_model()
    atoms = structures()[2]
    with pytest.raises(AssertionError):
        assert_rotation_equivariant(output_fn(model, "vectors"), atoms, kind="atom_scalar")


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_state_path_matches_structure_path_and_state_symmetries(architecture):
    model = tiny_model(architecture=architecture)
    atoms = structures()[1]
    system = model.system(atoms.numbers)
    x = system.to_state(atoms)
    t = torch.tensor([0.4], dtype=torch.float64)
    eps = model.eps(system, x, t)
    decoded = system.to_atoms(x)[0]
    frac, lat = output_fn(model, "frac_eps", 0.4)(decoded), output_fn(model, "lattice_eps", 0.4)(decoded)
    torch.testing.assert_close(eps, torch.tensor(np.concatenate([frac.ravel(), lat]))[None], atol=1e-9, rtol=1e-7)
    n = system.num_atoms
    # permuting the atoms of the state permutes the fractional eps; lattice eps unchanged
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(0))
    xp = torch.cat([x[:, : 3 * n].reshape(1, n, 3)[:, perm].reshape(1, -1), x[:, 3 * n :]], 1)
    ep = model.eps(system, xp, t)
    torch.testing.assert_close(ep[:, : 3 * n].reshape(n, 3), eps[:, : 3 * n].reshape(n, 3)[perm], atol=1e-9, rtol=1e-7)
    torch.testing.assert_close(ep[:, 3 * n :], eps[:, 3 * n :], atol=1e-9, rtol=1e-7)
    # a global fractional translation and moving one atom by a lattice vector change nothing
    shift = torch.zeros_like(x)
    shift[:, : 3 * n] = torch.tensor([0.3, 0.71, 0.05], dtype=torch.float64).repeat(n)
    shifted = system.space.wrap(x + shift)
    shifted[:, 0] += 1.0
    torch.testing.assert_close(model.eps(system, shifted, t), eps, atol=1e-9, rtol=1e-7)


def test_lattice_skip_is_the_gaussian_answer():
    """With the lattice head silenced, the lattice eps is sigma(t) z_t: the exact E[eps | z_t] for z_0 ~ N(0, 1)."""
    model = tiny_model()
    for p in model.lattice_head.parameters():
        torch.nn.init.zeros_(p)
    system = model.system([6] * 4)
    g = torch.Generator().manual_seed(1)
    x = 3.0 * system.space.sample_prior(3, generator=g, dtype=torch.float64)
    t = torch.tensor([0.05, 0.5, 1.0], dtype=torch.float64)
    eps = model.eps(system, system.space.wrap(x), t)
    sigma = model.config.schedule.sigma(t)[:, None]
    torch.testing.assert_close(eps[:, -6:], sigma * x[:, -6:], atol=1e-12, rtol=0)


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_batches_of_different_sizes_equal_single_calls(architecture):
    model = tiny_model(architecture=architecture)
    atoms = structures()
    systems = [model.system(a.numbers) for a in atoms]
    xs = [s.to_state(a) for s, a in zip(systems, atoms)]
    ts = [torch.tensor([v], dtype=torch.float64) for v in (0.1, 0.5, 0.9)]
    joint = model(list(zip(systems, xs, ts)))
    for s, x, t, e in zip(systems, xs, ts, joint):
        torch.testing.assert_close(e, model.eps(s, x, t), atol=1e-10, rtol=1e-8)


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_loss_trains_every_parameter_and_checkpoint_round_trip(tmp_path, architecture):
    model = tiny_model(architecture=architecture).float().train()
    data = CrystalDataset(carbon_prototypes(rattled=1), model.config.state)
    batch = collate_crystals([data[i] for i in range(len(data))])
    assert len(batch) == 3  # 2-, 4- and 8-atom systems
    loss = crystal_dsm_loss(model, batch, torch.Generator().manual_seed(0))
    loss.backward()
    assert torch.isfinite(loss)
    unused = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not unused, unused
    cfg = model.config
    assert CrystalModelConfig.from_dict(cfg.to_dict()) == cfg
    favour_low_noise = replace(cfg, time_power=3.0)
    assert CrystalModelConfig.from_dict(favour_low_noise.to_dict()) == favour_low_noise
    with pytest.raises(ValueError, match="time_power"):
        replace(cfg, time_power=0.0)
    path = save_checkpoint(tmp_path / "m.pt", config=cfg.to_dict(), state_dict=model.state_dict(), ema_state_dict=model.state_dict(), metadata={"kind": "crystal"})
    loaded = CrystalScoreModel.from_checkpoint(path)
    system = model.system([6] * 2)
    x = system.to_state(carbon_prototypes()[0]).float()
    t = torch.tensor([0.3])
    torch.testing.assert_close(loaded.eps(system, x, t), model.eval().eps(system, x, t))


def test_bad_inputs_are_refused():
    with pytest.raises(ValueError, match="scalar"):
        CrystalModelConfig(network=GraphormerConfig(num_tags=1, scalar_pool="sum"))
    with pytest.raises(ValueError, match="num_atoms"):
        CrystalModelConfig(num_atoms=((0, 3),))
    model = tiny_model(elements=("C",))
    with pytest.raises(ValueError, match="not trained on Si"):
        model.system([14, 14])
    with pytest.raises(ValueError, match="atom-count distribution"):
        model.draw_num_atoms(3)
    slab = structures()[0].copy()
    slab.pbc = [True, True, False]
    with pytest.raises(ValueError, match="periodic"):
        model.outputs(AtomsBatch.from_atoms([slab], dtype=torch.float64), torch.tensor([0.5], dtype=torch.float64))


def test_draw_num_atoms_follows_histogram():
    model = tiny_model(num_atoms=((6, 1), (12, 3)))
    draws = np.array(model.draw_num_atoms(4000, generator=torch.Generator().manual_seed(0)))
    assert set(draws) == {6, 12}
    assert abs((draws == 12).mean() - 0.75) < 0.03


def test_cellnet_model_trains_every_parameter_and_loads_by_kind(tmp_path):
    """The cell-level architecture: every weight gets a gradient from the DSM loss, and its
    checkpoint loads back through digmat.load_model (kind 'crystal', architecture recorded)."""
    import digmat
    from tests.nn.test_cellnet import tiny_cellnet_model

    model = tiny_cellnet_model().float().train()
    data = CrystalDataset(carbon_prototypes(rattled=1), model.config.state)
    loss = crystal_dsm_loss(model, collate_crystals([data[i] for i in range(len(data))]), torch.Generator().manual_seed(0))
    loss.backward()
    unused = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert torch.isfinite(loss) and not unused, unused
    path = save_checkpoint(tmp_path / "cellnet.pt", config=model.config.to_dict(), state_dict=model.state_dict(), ema_state_dict=model.state_dict(),
                           metadata={}, kind="crystal")
    loaded = digmat.load_model(path)
    assert isinstance(loaded, CrystalScoreModel) and loaded.config.architecture == "cellnet"
    system = model.system([6] * 2)
    x = system.to_state(carbon_prototypes()[0]).float()
    t = torch.tensor([0.3])
    torch.testing.assert_close(loaded.eps(system, x, t), model.eval().eps(system, x, t))
    with pytest.raises(ValueError, match="works on states"):
        loaded.outputs(AtomsBatch.from_atoms([carbon_prototypes()[0]]), t)
