"""Ligand score model: exact E(3) equivariance of its outputs, the torsion read-out against autograd,
the loss pipeline, and the checkpoint round trip through the one loader."""

import copy

import numpy as np
import pytest
import torch

pytest.importorskip("rdkit", reason="needs the ligand extra (rdkit)")

from digmat.core import RigidState  # noqa: E402
from digmat.core.so3 import exp_map  # noqa: E402
from digmat.models.ligand import LigandModelConfig, LigandScoreModel, least_squares_rotation, ligand_dsm_loss  # noqa: E402

F64 = torch.float64


@pytest.fixture(scope="module", params=[(False, "torque", 0), (True, "torque", 0), (False, "inertia", 0), (False, "torque", 4)],
                ids=["distances", "vectors", "inertia", "alignment"])
def model_and_system(pocket_1uou, request):
    torch.manual_seed(0)
    vectors, orientation, alignment = request.param
    model = LigandScoreModel(LigandModelConfig(width=32, layers=2, rbf=12, vector_features=vectors,
                                               orientation=orientation, alignment=alignment)).double().eval()
    with torch.no_grad():  # make every output non-trivial (the output scales start small,
        model.out_scale.bias.fill_(1.0)  # the vector read-out, updates and alignment gains at zero)
        if vectors:
            model.head_vector.weight.normal_(0.0, 0.3)
            for layer in model.layers:
                layer.mix.mlp[-1].weight.normal_(0.0, 0.1)
        if alignment:
            model.align_gain.bias.normal_(0.0, 1.0)
    pocket, mol = pocket_1uou
    heavy = np.array([a.GetAtomicNum() > 1 for a in mol.GetAtoms()])
    centre = mol.GetConformer().GetPositions()[heavy].mean(axis=0)
    return model, model.system(mol, pocket, centre)


def _moved(system, Q: np.ndarray, shift: np.ndarray):
    """The same complex rotated by Q and shifted (pocket, ligand template, site centre)."""
    from rdkit import Chem

    moved = copy.copy(system)
    moved.pocket_positions = system.pocket_positions @ Q.T + shift
    moved.center = system.center @ Q.T + shift
    moved.mol = Chem.Mol(system.mol)
    return moved


def test_outputs_are_equivariant_under_rotations_and_translations(model_and_system):
    model, system = model_and_system
    g = torch.Generator().manual_seed(1)
    prior = system.diffusion().sample_prior(6, generator=g, dtype=F64)
    state = RigidState(0.4 * prior.x, prior.R)  # near the site, so pocket atoms are in range
    t = torch.tensor([0.02, 0.05, 0.1, 0.2, 0.35, 0.6], dtype=F64)
    Q = exp_map(torch.tensor([0.3, -1.1, 0.7], dtype=F64))
    shift = np.array([4.0, -2.0, 7.5])
    moved = _moved(system, Q.numpy(), shift)
    # the same poses in the moved frame: centroid offsets rotate, orientations are left-multiplied
    x_moved = state.x.clone()
    x_moved[:, :3] = state.x[:, :3] @ Q.T
    moved_state = RigidState(x_moved, Q @ state.R)
    np.testing.assert_allclose(moved.positions(moved_state).numpy(),
                               system.positions(state).numpy() @ Q.numpy().T + shift, atol=1e-9)
    with torch.no_grad():
        ex, eR = model.eps(system, state, t)
        mx, mR = model.eps(moved, moved_state, t)
    assert ex.abs().max() > 1e-3 and eR.abs().max() > 1e-3
    torch.testing.assert_close(mx[:, :3], ex[:, :3] @ Q.T, atol=1e-9, rtol=1e-7)
    torch.testing.assert_close(mR, eR @ Q.T, atol=1e-9, rtol=1e-7)
    torch.testing.assert_close(mx[:, 3:], ex[:, 3:], atol=1e-9, rtol=1e-7)


def test_torsion_read_out_is_the_generalised_force(model_and_system):
    """Σ_i f_i · ∂r_i/∂τ_m equals autograd's vector-Jacobian product through the pose map."""
    _, system = model_and_system
    g = torch.Generator().manual_seed(2)
    prior = system.diffusion().sample_prior(5, generator=g, dtype=F64)
    heavy = torch.as_tensor(system.pose.heavy)
    f = torch.randn(5, int(heavy.sum()), 3, generator=g, dtype=F64)
    x = prior.x.clone().requires_grad_(True)
    r = system.positions(RigidState(x, prior.R))[:, heavy]
    (grad,) = torch.autograd.grad((r * f).sum(), x)
    ours = LigandScoreModel._torsion_forces(system, r.detach(), f)
    torch.testing.assert_close(ours, grad[:, 3:], atol=1e-10, rtol=1e-10)
    # and the centroid read-out is the net force (∂r_i/∂x_t = L for every atom)
    torch.testing.assert_close(grad[:, :3], f.sum(1) * system.length_scale)


def test_loss_backpropagates_and_checkpoint_round_trips(model_and_system, tmp_path):
    from digmat.checkpoint import save_checkpoint
    from digmat.pretrained import load_model

    model, system = model_and_system
    train = copy.deepcopy(model).float().train()
    crystal = system.to_state(system.mol.GetConformer().GetPositions(), dtype=torch.float32)
    batch = RigidState(crystal.x.expand(16, -1).clone(), crystal.R.expand(16, 3, 3).clone())
    out = ligand_dsm_loss(train, system, batch, generator=torch.Generator().manual_seed(0))
    out.loss.backward()
    assert torch.isfinite(out.loss) and all(p.grad is not None for p in train.parameters() if p.requires_grad)
    fixed = ligand_dsm_loss(train, system, batch, t=torch.full((16,), 0.15), generator=torch.Generator().manual_seed(0))
    assert torch.all(fixed.t == 0.15) and not torch.all(out.t == out.t[0])  # one time when asked, else spread
    path = tmp_path / "ligand.pt"
    save_checkpoint(path, config=model.config.to_dict(), state_dict=model.state_dict(), kind="ligand")
    loaded = load_model(path).double()
    assert loaded.kind == "ligand" and loaded.config == model.config
    state = RigidState(crystal.x.double(), crystal.R.double())
    t = torch.tensor([0.1], dtype=F64)
    with torch.no_grad():
        a, b = model.eps(system, state, t), loaded.eps(system, state, t)
    torch.testing.assert_close(a, b)


@pytest.mark.parametrize("added, tag", [({"vector_features": True}, "head_vector"), ({"alignment": 3}, "align_gain")])
def test_extensions_start_as_the_model_they_extend(model_and_system, added, tag):
    """``extended`` adds output paths that start at zero: same ε to round-off, and the new
    parameters do get gradients; an option the model already has, or cannot add, is refused."""
    model, system = model_and_system
    name = next(iter(added))
    if getattr(model.config, name):
        with pytest.raises(ValueError, match=f"already has {name}"):
            model.extended(**added)
        return
    with pytest.raises(ValueError, match="not 'width'"):
        model.extended(width=64)
    bigger = model.extended(**added)
    assert getattr(bigger.config, name) == added[name] and bigger.training == model.training
    g = torch.Generator().manual_seed(3)
    prior = system.diffusion().sample_prior(4, generator=g, dtype=F64)
    state = RigidState(0.4 * prior.x, prior.R)
    t = torch.tensor([0.05, 0.1, 0.3, 0.6], dtype=F64)
    with torch.no_grad():
        a, b = model.eps(system, state, t), bigger.eps(system, state, t)
    torch.testing.assert_close(a, b, atol=1e-12, rtol=1e-10)
    ex, eR = bigger.eps(system, state, t)
    ((ex ** 2).sum() + (eR ** 2).sum()).backward()
    assert getattr(bigger, tag).weight.grad.abs().max() > 0


def test_least_squares_rotation_recovers_a_rigid_rotation_where_the_torque_does_not():
    """Displacements ω × a of an elongated body: the fit returns ω (exactly without damping, and
    the damped normal equations' solution with it); the torque ⟨a × d⟩ = I ω points elsewhere."""
    g = torch.Generator().manual_seed(4)
    arms = torch.randn(2, 12, 3, generator=g, dtype=F64) * torch.tensor([4.0, 1.0, 0.5], dtype=F64)
    arms = arms - arms.mean(1, keepdim=True)
    omega = torch.tensor([[0.3, -0.2, 0.5], [1.0, 0.0, 0.0]], dtype=F64)
    d = torch.cross(omega[:, None].expand_as(arms), arms, dim=-1)
    torch.testing.assert_close(least_squares_rotation(arms, d, damping=0.0), omega, atol=1e-10, rtol=1e-10)
    torque = torch.cross(arms, d, dim=-1).mean(1)
    cosine = (torque * omega).sum(-1) / (torque.norm(dim=-1) * omega.norm(dim=-1))
    assert cosine.min() < 0.95  # the torque is not along ω for an anisotropic body
    # with damping: the minimiser of ⟨|d − ω × a|²⟩ + δ|ω|² (its gradient vanishes there)
    target = d + 0.1 * torch.randn(arms.shape, generator=g, dtype=F64)
    w = least_squares_rotation(arms, target, damping=0.3).requires_grad_(True)
    residual = target - torch.cross(w[:, None].expand_as(arms), arms, dim=-1)
    objective = (residual ** 2).sum(-1).mean(1) + 0.3 * (w ** 2).sum(-1)
    (grad,) = torch.autograd.grad(objective.sum(), w)
    assert grad.abs().max() < 1e-10


def test_orientation_read_out_is_validated_and_old_configs_read_torque():
    with pytest.raises(ValueError, match="orientation must be one of"):
        LigandModelConfig(orientation="kabsch")
    data = LigandModelConfig(orientation="inertia").to_dict()
    assert LigandModelConfig.from_dict(data).orientation == "inertia"
    del data["orientation"]  # checkpoints written before the option existed
    assert LigandModelConfig.from_dict(data).orientation == "torque"
