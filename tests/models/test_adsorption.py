import numpy as np
import pytest
import torch
from ase.build import fcc111
from scipy.spatial.transform import Rotation

from digmat.adsorption import convert_ase_tags, get_adsorbate
from digmat.checkpoint import load_checkpoint, save_checkpoint
from digmat.models import AdsorptionModelConfig, AdsorptionScoreModel, adsorption_dsm_loss
from digmat.nn import GraphormerConfig
from digmat.systems import AdsorbateStateConfig, AdsorbateSystem


def tiny_config(**kw):
    net = GraphormerConfig(num_layers=2, embed_dim=32, num_heads=4, ffn_dim=64, num_rbf=16, cutoff=5.0, num_tags=4, num_conditions=1, scalar_out=0)
    return AdsorptionModelConfig(network=net, **kw)


def rotated(atoms, rot):
    out = atoms.copy()
    out.positions = rot.apply(atoms.positions)
    out.cell = rot.apply(atoms.cell.array)
    return out


@pytest.mark.parametrize("relax_surface, depth", [(False, None), (True, None), (False, 2.5)])
def test_eps_symmetries(relax_surface, depth):
    torch.manual_seed(0)
    model = AdsorptionScoreModel(tiny_config(state=AdsorbateStateConfig(relax_surface=relax_surface), network_depth=depth)).double()
    slab = convert_ase_tags(fcc111("Pt", (2, 2, 3), vacuum=8.0))
    ads = get_adsorbate("OH")
    system = AdsorbateSystem(slab, ads, config=model.config.state)
    g = torch.Generator().manual_seed(1)
    x = system.space.wrap(0.5 * system.space.sample_prior(3, generator=g, dtype=torch.float64))
    t = torch.tensor([0.05, 0.3, 0.8], dtype=torch.float64)
    eps = model.eps(system, x, t, 600.0)
    assert eps.shape == x.shape
    # lattice translation of the anchor (u -> u + 1) changes nothing
    shifted = x.clone()
    shifted[:, 0] += 1.0
    shifted[:, 1] -= 2.0
    torch.testing.assert_close(model.eps(system, shifted, t, 600.0), eps, atol=1e-9, rtol=1e-9)
    # rotation about the surface normal: torus/height entries invariant, Cartesian entries rotate
    rot = Rotation.from_euler("z", 41.0, degrees=True)
    system_r = AdsorbateSystem(rotated(slab, rot), ads, config=model.config.state)
    configs = system.to_atoms(x)
    x_r = system_r.to_state([rotated(c, rot) for c in configs])
    eps_r = model.eps(system_r, x_r, t, 600.0)
    torch.testing.assert_close(eps_r[:, :3], eps[:, :3], atol=1e-8, rtol=1e-8)
    np.testing.assert_allclose(eps_r[:, 3:].detach().numpy().reshape(3, -1, 3), rot.apply(eps[:, 3:].detach().numpy().reshape(-1, 3)).reshape(3, -1, 3), atol=1e-8)
    # the temperature is an input
    assert not torch.allclose(model.eps(system, x, t, 300.0), eps)


def test_loss_batches_several_systems_and_checkpoint_round_trip(tmp_path):
    torch.manual_seed(0)
    model = AdsorptionScoreModel(tiny_config(elements=("Pt", "O", "H", "C")))
    slab = convert_ase_tags(fcc111("Pt", (2, 2, 3), vacuum=8.0))
    s1, s2 = AdsorbateSystem(slab, get_adsorbate("O")), AdsorbateSystem(slab, get_adsorbate("CO"))
    g = torch.Generator().manual_seed(0)
    groups = [(s, s.space.sample_prior(4, generator=g), torch.full((4,), 600.0)) for s in (s1, s2)]
    loss = adsorption_dsm_loss(model, groups, torch.Generator().manual_seed(3))
    loss.backward()
    assert torch.isfinite(loss) and all(p.grad is not None for p in model.network.parameters() if p.requires_grad and p.grad is not None)
    save_checkpoint(tmp_path / "m.pt", config=model.config.to_dict(), state_dict=model.state_dict())
    ckpt = load_checkpoint(tmp_path / "m.pt")
    again = AdsorptionScoreModel(AdsorptionModelConfig.from_dict(ckpt["config"]))
    again.load_state_dict(ckpt["state_dict"])
    assert again.config == model.config
    x = groups[0][1]
    t = torch.full((4,), 0.4)
    torch.testing.assert_close(again.eps(s1, x, t, 500.0), model.eps(s1, x, t, 500.0))


def test_unsupported_inputs_are_refused():
    model = AdsorptionScoreModel(tiny_config(elements=("Pt", "O")))
    slab = convert_ase_tags(fcc111("Cu", (2, 2, 3), vacuum=8.0))
    system = AdsorbateSystem(slab, get_adsorbate("O"))
    with pytest.raises(ValueError, match="not trained on Cu"):
        model.score_fn(system, 300.0)
    with pytest.raises(ValueError, match="outside the model's trained range"):
        model.score_fn(AdsorbateSystem(convert_ase_tags(fcc111("Pt", (2, 2, 3), vacuum=8.0)), get_adsorbate("O")), 5000.0)


def test_network_depth_leaves_deep_layers_out():
    """With network_depth, eps on a 4-layer slab equals eps on the same slab cut to its top 2 layers."""
    torch.manual_seed(0)
    model = AdsorptionScoreModel(tiny_config(network_depth=2.5)).double()
    deep = convert_ase_tags(fcc111("Pt", (2, 2, 4), vacuum=8.0))
    z = deep.positions[:, 2]
    top2 = deep[z > z.max() - 2.5]
    ads = get_adsorbate("CO")
    s_deep, s_top = AdsorbateSystem(deep, ads), AdsorbateSystem(top2, ads)
    assert len(model.input_atoms(s_deep)) == len(top2) + 2
    x = s_deep.space.wrap(0.5 * s_deep.space.sample_prior(3, generator=torch.Generator().manual_seed(1), dtype=torch.float64))
    t = torch.tensor([0.05, 0.3, 0.8], dtype=torch.float64)
    torch.testing.assert_close(model.eps(s_deep, x, t, 600.0), model.eps(s_top, x, t, 600.0), atol=1e-9, rtol=1e-9)
    full = AdsorptionScoreModel(tiny_config())
    full.load_state_dict(model.state_dict())
    assert not torch.allclose(full.double().eps(s_deep, x, t, 600.0), model.eps(s_deep, x, t, 600.0))


def test_unknown_adsorbate_is_refused():
    model = AdsorptionScoreModel(tiny_config(elements=("Pt", "O", "C", "H"), adsorbates=("O", "CO")))
    slab = convert_ase_tags(fcc111("Pt", (2, 2, 3), vacuum=8.0))
    model.score_fn(AdsorbateSystem(slab, get_adsorbate("CO")), 300.0)
    with pytest.raises(ValueError, match="not trained on the adsorbate CH3"):
        model.score_fn(AdsorbateSystem(slab, get_adsorbate("CH3")), 300.0)


@pytest.mark.parametrize("metric", [True, False])
def test_anchor_vector_maps_to_inplane_noise(metric):
    """With ``inplane_metric`` a Cartesian anchor vector d / sigma, where the state's in-plane
    noise moved the anchor by d = sigma (eps_u a_hat + eps_v b_hat) on the 120-degree Pt(111)
    cell, is mapped back to exactly (eps_u, eps_v); plain projections are off by the metric."""
    from digmat.models.adsorption import _state_eps

    slab = convert_ase_tags(fcc111("Pt", (3, 3, 3), vacuum=8.0))
    system = AdsorbateSystem(slab, get_adsorbate("OH"))
    eps_true = torch.randn(5, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    frame = torch.as_tensor(system.frame)
    a_hat, b_hat = frame[0] / frame[0].norm(), frame[1] / frame[1].norm()
    # the same displacement through the system's own state -> positions map
    x0 = system.space.wrap(0.3 * torch.ones(5, system.dim, dtype=torch.float64))
    xt = x0.clone()
    sigma = 0.2
    xt[:, :2] += sigma * eps_true * system.space.torus_scale(x0)[:2]
    d = system.positions(xt)[:, system.num_slab + system.anchor] - system.positions(x0)[:, system.num_slab + system.anchor]
    assert torch.allclose(d, sigma * (eps_true[:, :1] * a_hat + eps_true[:, 1:] * b_hat))
    vectors = torch.zeros(5, system.num_slab + system.num_adsorbate, 3, dtype=torch.float64)
    vectors[:, system.num_slab + system.anchor] = d / sigma
    uv = _state_eps(system, vectors, metric)[:, :2]
    assert torch.allclose(uv, eps_true, atol=1e-12) == metric
