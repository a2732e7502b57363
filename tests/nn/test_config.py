"""GraphormerConfig: validation and plain-data round trip."""

from __future__ import annotations

import dataclasses
import json

import pytest

from digmat.nn import GraphormerConfig


def test_round_trip_through_json():
    cfg = GraphormerConfig(num_layers=3, cutoff=5, num_conditions=2, scalar_pool="mean")
    data = json.loads(json.dumps(cfg.to_dict()))
    assert GraphormerConfig.from_dict(data) == cfg
    assert isinstance(cfg.cutoff, float)


def test_is_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        GraphormerConfig().num_layers = 3


@pytest.mark.parametrize("kwargs, message", [
    ({"embed_dim": 30, "num_heads": 4}, "divisible"),
    ({"num_layers": 0}, "num_layers"),
    ({"cutoff": -1.0}, "cutoff"),
    ({"scalar_pool": "max"}, "scalar_pool"),
    ({"num_conditions": -1}, "num_conditions"),
    ({"time_embed_dim": 15}, "even"),
    ({"num_heads": 2.0}, "num_heads"),
])
def test_rejects_bad_values(kwargs, message):
    with pytest.raises(ValueError, match=message):
        GraphormerConfig(**kwargs)


def test_from_dict_rejects_unknown_keys():
    with pytest.raises(ValueError, match="dropout"):
        GraphormerConfig.from_dict({**GraphormerConfig().to_dict(), "dropout": 0.1})
