"""PaiNN: configuration, input checks, and the angular information the Graphormer lacks."""

import numpy as np
import pytest
import torch
from ase import Atoms

from digmat.nn import AtomsBatch, GraphormerConfig, PeriodicGraphormer
from digmat.nn.painn import PaiNN, PaiNNConfig


def bent_or_straight(angle_deg):
    """C with two C neighbours 1.45 Å away at ``angle_deg``, far from every image (30 Å box)."""
    a = np.radians(angle_deg)
    pos = [[15, 15, 15], [16.45, 15, 15], [15 + 1.45 * np.cos(a), 15 + 1.45 * np.sin(a), 15]]
    return Atoms("C3", positions=pos, cell=[30, 30, 30], pbc=True)


def centre_scalars(net, atoms):
    batch = AtomsBatch.from_atoms([atoms], dtype=torch.float64)
    with torch.no_grad():
        return net(batch, torch.tensor([0.2], dtype=torch.float64)).scalars[0]


def test_one_layer_sees_the_bond_angle_that_distances_alone_do_not_give():
    """Same distances from the centre atom (1.45, 1.45 Å), 90° or 180° between the bonds: one
    PaiNN layer tells them apart; a one-layer Graphormer (distance-biased attention) cannot."""
    torch.manual_seed(0)
    painn = PaiNN(PaiNNConfig(num_layers=1, hidden=16, num_rbf=8, cutoff=2.0, scalar_out=4)).double().eval()
    bent, straight = (centre_scalars(painn, bent_or_straight(a)) for a in (90.0, 180.0))
    assert (bent - straight).abs().max() > 1e-8  # float64: a distance-only network differs by < 1e-12
    torch.manual_seed(0)
    graphormer = PeriodicGraphormer(GraphormerConfig(num_layers=1, embed_dim=16, num_heads=2, ffn_dim=32, num_rbf=8, cutoff=2.0,
                                                     num_tags=1, scalar_out=4, scalar_pool="none")).double().eval()
    g_bent, g_straight = (centre_scalars(graphormer, bent_or_straight(a)) for a in (90.0, 180.0))
    torch.testing.assert_close(g_bent, g_straight, atol=1e-12, rtol=0)


def test_config_round_trip_and_refusals():
    cfg = PaiNNConfig(num_layers=3, hidden=32, cutoff=3)
    assert PaiNNConfig.from_dict(cfg.to_dict()) == cfg and cfg.cutoff == 3.0 and cfg.width == 32
    with pytest.raises(ValueError, match="hidden"):
        PaiNNConfig(hidden=0)
    with pytest.raises(ValueError, match="cutoff"):
        PaiNNConfig(cutoff=-1.0)
    with pytest.raises(ValueError, match="unknown"):
        PaiNNConfig.from_dict({"hidden": 8, "heads": 2})
    net = PaiNN(PaiNNConfig(num_layers=1, hidden=8, num_rbf=4, cutoff=2.0))
    batch = AtomsBatch.from_atoms([bent_or_straight(120.0)])
    with pytest.raises(ValueError, match="shape"):
        net(batch, torch.tensor([0.1, 0.2]))
    with pytest.raises(ValueError, match="differ"):
        net(AtomsBatch.from_atoms([bent_or_straight(120.0)], dtype=torch.float64), 0.1)
