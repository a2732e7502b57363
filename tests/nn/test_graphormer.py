"""PeriodicGraphormer: shapes, batching, masks, heads, smoothness, gradients, errors, checkpoints."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from ase import Atoms

from digmat.nn import AtomsBatch, GraphormerConfig, PeriodicGraphormer
from digmat.testing import assert_supercell_consistent, model_fn


def mixed_batch(structures, dtype=torch.float32) -> AtomsBatch:
    systems = [structures[k] for k in ("slab", "bulk_triclinic", "molecule", "bulk_primitive")]
    return AtomsBatch.from_atoms(systems, dtype=dtype)


def test_output_shapes_and_default_dtype(structures, small_config):
    model = PeriodicGraphormer(small_config)
    batch = mixed_batch(structures)
    out = model(batch, t=torch.rand(4))
    assert out.vectors.shape == (batch.num_atoms, 3) and out.vectors.dtype == torch.float32
    assert out.scalars.shape == (4, small_config.scalar_out)
    assert torch.isfinite(out.vectors).all() and torch.isfinite(out.scalars).all()


def test_batched_equals_one_by_one(structures, small_config):
    model = PeriodicGraphormer(small_config).double()
    batch = mixed_batch(structures, torch.float64)
    t = torch.tensor([0.1, 0.4, 0.7, 1.0], dtype=torch.float64)
    out = model(batch, t=t)
    ptr = batch.ptr.tolist()
    for b, atoms in enumerate(batch.to_atoms()):
        single = model(AtomsBatch.from_atoms([atoms], dtype=torch.float64), t=t[b : b + 1])
        torch.testing.assert_close(out.vectors[ptr[b] : ptr[b + 1]], single.vectors, atol=1e-12, rtol=0)
        torch.testing.assert_close(out.scalars[b], single.scalars[0], atol=1e-12, rtol=0)


def test_time_and_conditions_change_the_output(structures, small_config):
    cfg = GraphormerConfig(**{**small_config.to_dict(), "num_conditions": 2})
    model = PeriodicGraphormer(cfg)
    batch = AtomsBatch.from_atoms([structures["slab"]])
    c = torch.tensor([[0.3, -1.0]])
    base = model(batch, t=0.2, conditions=c).vectors
    assert not torch.allclose(base, model(batch, t=0.8, conditions=c).vectors)
    assert not torch.allclose(base, model(batch, t=0.2, conditions=c + 0.5).vectors)
    torch.testing.assert_close(base, model(batch, t=torch.tensor([0.2]), conditions=c).vectors)


def test_vector_mask_selects_atoms(structures, small_config):
    model = PeriodicGraphormer(small_config)
    batch = AtomsBatch.from_atoms([structures["slab"]])
    mask = batch.tags == 2
    full = model(batch, t=0.5).vectors
    masked = model(batch, t=0.5, vector_mask=mask).vectors
    assert (masked[~mask] == 0).all()
    torch.testing.assert_close(masked[mask], full[mask])
    assert full[~mask].abs().sum() > 0


@pytest.mark.parametrize("pool", ["sum", "mean", "none"])
def test_scalar_pooling(structures, small_config, pool):
    cfg = GraphormerConfig(**{**small_config.to_dict(), "scalar_pool": pool, "scalar_out": 1})
    model = PeriodicGraphormer(cfg)
    fn = model_fn(model, output="scalars")
    atoms = structures["bulk_triclinic"]
    out = fn(atoms)
    assert out.shape == ((len(atoms),) if pool == "none" else ())
    # sum is extensive, mean and per-atom values intensive
    assert_supercell_consistent(fn, atoms, extensive=pool == "sum", atol=1e-9, rtol=1e-9)


def test_no_scalar_head(structures, small_config):
    cfg = GraphormerConfig(**{**small_config.to_dict(), "scalar_out": 0})
    out = PeriodicGraphormer(cfg)(AtomsBatch.from_atoms([structures["molecule"]]), t=0.5)
    assert out.scalars is None


def test_continuous_when_an_atom_crosses_the_cutoff(small_config):
    model = PeriodicGraphormer(small_config).double()
    rc = small_config.cutoff

    def vectors(d: float) -> torch.Tensor:
        atoms = Atoms("PtO", positions=[[0, 0, 0], [d, 0, 0]])
        return model(AtomsBatch.from_atoms([atoms], dtype=torch.float64), t=0.5).vectors

    inside, outside = vectors(rc - 1e-4), vectors(rc + 1e-4)
    assert (outside == 0).all()                        # beyond the cutoff the atoms are isolated
    assert inside.abs().max() < 1e-8                  # ... and just inside they nearly are
    assert vectors(rc - 1.0).abs().max() > 1e-4       # but well inside they interact


def test_gradients_for_exact_divergence(structures, small_config):
    """Autograd through the network w.r.t. positions matches finite differences."""
    model = PeriodicGraphormer(small_config).double()
    batch = AtomsBatch.from_atoms([structures["bulk_triclinic"]], dtype=torch.float64)

    def field(pos: torch.Tensor) -> torch.Tensor:
        return model(batch.with_positions(pos), t=0.3).vectors

    pos = batch.positions.clone().requires_grad_()
    assert torch.autograd.gradcheck(field, (pos,), atol=1e-6)
    # divergence sum_i d v_i / d r_i, with a graph for higher-order use
    out = field(pos)
    div = sum(torch.autograd.grad(out[:, k].sum(), pos, create_graph=True)[0][:, k] for k in range(3))
    assert torch.isfinite(div).all() and div.requires_grad


def test_float32_matches_float64(structures, small_config):
    model = PeriodicGraphormer(small_config)
    v32 = model_fn(model, dtype=torch.float32)(structures["slab"])
    v64 = model_fn(model, dtype=torch.float64)(structures["slab"])
    np.testing.assert_allclose(v32, v64, atol=1e-4)


def test_checkpoint_round_trip_with_weights_only(structures, small_config):
    model = PeriodicGraphormer(small_config)
    buffer = io.BytesIO()
    torch.save({"config": small_config.to_dict(), "state_dict": model.state_dict()}, buffer)
    buffer.seek(0)
    ckpt = torch.load(buffer, weights_only=True)
    restored = PeriodicGraphormer(GraphormerConfig.from_dict(ckpt["config"]))
    restored.load_state_dict(ckpt["state_dict"])
    batch = AtomsBatch.from_atoms([structures["slab"]])
    torch.testing.assert_close(restored(batch, t=0.5).vectors, model(batch, t=0.5).vectors)


def test_default_configuration_size():
    model = PeriodicGraphormer(GraphormerConfig())
    assert model.num_parameters() == 1_299_921


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu(structures, small_config):
    model = PeriodicGraphormer(small_config).double()
    batch = mixed_batch(structures, torch.float64)
    cpu = model(batch, t=0.5).vectors
    gpu = model.to("cuda")(batch.to("cuda"), t=0.5).vectors
    torch.testing.assert_close(gpu.cpu(), cpu, atol=1e-10, rtol=1e-8)


def test_clear_errors(structures, small_config):
    model = PeriodicGraphormer(small_config)
    batch = AtomsBatch.from_atoms([structures["slab"]])
    with pytest.raises(ValueError, match="dtype"):
        model(batch.to(dtype=torch.float64), t=0.5)
    with pytest.raises(ValueError, match=r"shape \(1,\)"):
        model(batch, t=torch.rand(3))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        model(batch, t=1.5)
    with pytest.raises(ValueError, match="num_conditions is 0"):
        model(batch, t=0.5, conditions=torch.zeros(1, 1))
    with pytest.raises(ValueError, match="vector_mask"):
        model(batch, t=0.5, vector_mask=torch.ones(3, dtype=torch.bool))
    with pytest.raises(ValueError, match="AtomsBatch"):
        model(structures["slab"], t=0.5)
    ase_tags = structures["slab"].copy()
    ase_tags.set_tags(np.arange(len(ase_tags)) % 4)     # ase layer numbers are not OC20 tags
    with pytest.raises(ValueError, match="OC20"):
        model(AtomsBatch.from_atoms([ase_tags]), t=0.5)
    light = PeriodicGraphormer(GraphormerConfig(**{**small_config.to_dict(), "max_z": 10}))
    with pytest.raises(ValueError, match="max_z"):
        light(batch, t=0.5)
    conditioned = PeriodicGraphormer(GraphormerConfig(**{**small_config.to_dict(), "num_conditions": 1}))
    with pytest.raises(ValueError, match="expects conditions"):
        conditioned(batch, t=0.5)
    with pytest.raises(ValueError, match="GraphormerConfig"):
        PeriodicGraphormer({"num_layers": 2})
