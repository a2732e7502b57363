"""The cell-level network: its periodic pair density against ASE's neighbour list, and its
symmetries (digmat.testing) through the crystal score model's state path."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ase.build import bulk
from ase.neighborlist import neighbor_list

from digmat.models import CrystalModelConfig, CrystalScoreModel
from digmat.nn import GraphormerConfig
from digmat.nn.cellnet import CellNet, CellNetConfig
from digmat.systems import CrystalStateConfig
from digmat.systems.crystal import lattice_entries
from digmat.testing import (
    assert_lattice_image_invariant,
    assert_permutation_equivariant,
    assert_rotation_equivariant,
    assert_translation_invariant,
)
from tests.systems.test_crystal import random_crystal

STATE = CrystalStateConfig(volume_per_atom=6.3, lattice_scale=0.17, lattice_mean=(-0.4, 0.05, 0.4, 0.0, 0.0, 0.0))


def tiny_cellnet_model(seed=0):
    torch.manual_seed(seed)
    config = CrystalModelConfig(network=CellNetConfig(num_layers=2, hidden=16, num_freqs=3, num_rbf=8, cutoff=3.0, time_embed_dim=8),
                                state=STATE, architecture="cellnet")
    return CrystalScoreModel(config).double().eval()


@pytest.mark.parametrize("name, atoms, cutoff", [
    ("diamond (conventional cubic cell, 3.57 Å)", bulk("C", "diamond", a=3.567, cubic=True), 3.5),
    ("random triclinic", random_crystal(5, seed=4), 2.4),
])
def test_pair_density_equals_the_neighbour_list_sum(name, atoms, cutoff):
    """sum over the 27 shifts of phi(|r|) equals ASE's sum over all neighbours within the cutoff
    (the cells are wider than the cutoff, so the 27 shifts hold every neighbour)."""
    net = CellNet(CellNetConfig(num_rbf=6, cutoff=cutoff)).double()
    frac = torch.tensor(atoms.get_scaled_positions(), dtype=torch.float64)[None]
    cell = torch.tensor(atoms.cell.array, dtype=torch.float64)[None]
    _, _, _, radial = net.pair_geometry(frac, cell)
    ours = radial.sum(dim=3)[0]  # (N, N, R)
    i, j, d = neighbor_list("ijd", atoms, cutoff)
    ref = torch.zeros_like(ours)
    ref.index_put_((torch.as_tensor(i), torch.as_tensor(j)), net._radial(torch.as_tensor(d)), accumulate=True)
    assert len(d) > 0, name
    torch.testing.assert_close(ours, ref, atol=1e-10, rtol=1e-8)


def _eps_of_atoms(model, t=0.3):
    """Atoms (any basis, not canonicalised) -> the model's eps through its state path."""
    def fn(atoms):
        system = model.system(atoms.numbers)
        cell = torch.tensor(atoms.cell.array, dtype=torch.float64)[None]
        frac = torch.tensor(atoms.get_scaled_positions(wrap=False), dtype=torch.float64).reshape(1, -1)
        lat = lattice_entries(cell, torch.tensor([len(atoms)]), model.config.state)
        with torch.no_grad():
            eps = model.eps(system, torch.cat([frac, lat], dim=1), torch.tensor([t], dtype=torch.float64))[0]
        return eps[: 3 * len(atoms)].reshape(-1, 3).numpy(), eps[3 * len(atoms):].numpy()

    return fn


@pytest.mark.parametrize("seed", [0, 1])
def test_symmetries(seed):
    """Fractional eps: invariant under rotations and rigid translations, permuted with the
    atoms, unchanged by moving an atom by a lattice vector; lattice eps invariant under all."""
    model = tiny_cellnet_model()
    atoms = random_crystal(5, seed=seed)
    fn = _eps_of_atoms(model)
    for k, kind in ((0, "atom_scalar"), (1, "system_scalar")):
        def part(a, k=k):
            return fn(a)[k]

        assert_rotation_equivariant(part, atoms, kind=kind, atol=1e-9, rtol=1e-7)
        assert_permutation_equivariant(part, atoms, kind=kind, atol=1e-9, rtol=1e-7)
        assert_translation_invariant(part, atoms, kind=kind, atol=1e-9, rtol=1e-7)
        assert_lattice_image_invariant(part, atoms, kind=kind, atol=1e-9, rtol=1e-7)


def test_geometric_term_points_along_bonds():
    """Two atoms in a big cubic cell: the per-atom geometric output lies along the bond,
    whatever the learned coefficients."""
    net = CellNet(CellNetConfig(num_layers=1, hidden=8, num_rbf=4, cutoff=3.0)).double()
    torch.nn.init.zeros_(net.frac_out.weight)
    torch.nn.init.zeros_(net.frac_out.bias)
    frac = torch.tensor([[[0.1, 0.1, 0.1], [0.2, 0.15, 0.1]]], dtype=torch.float64)
    cell = 10.0 * torch.eye(3, dtype=torch.float64)[None]
    out, _ = net(torch.tensor([6, 6]), frac, cell, torch.zeros(1, 6, dtype=torch.float64), torch.tensor([0.2], dtype=torch.float64))
    bond = (frac[0, 1] - frac[0, 0]) / (frac[0, 1] - frac[0, 0]).norm()
    for v in out[0]:
        assert v.norm() > 1e-6 and torch.linalg.cross(v, bond).norm() < 1e-10 * v.norm()


def test_config_is_validated_and_round_trips():
    with pytest.raises(ValueError, match="positive integer"):
        CellNetConfig(hidden=0)
    with pytest.raises(ValueError, match="cutoff"):
        CellNetConfig(cutoff=-1.0)
    with pytest.raises(ValueError, match="needs a CellNetConfig"):
        CrystalModelConfig(network=GraphormerConfig(num_tags=1, scalar_out=4, scalar_pool="none"), architecture="cellnet")
    with pytest.raises(ValueError, match="architecture must be one of"):
        CrystalModelConfig(network=CellNetConfig(), architecture="mlp")
    config = tiny_cellnet_model().config
    assert CrystalModelConfig.from_dict(config.to_dict()) == config
    np.testing.assert_equal(config.to_dict()["architecture"], "cellnet")
