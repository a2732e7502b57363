"""SearchConfig and ExecutionConfig: validated once, one-line errors naming the field, and the
``settings`` record of every stored reference result read back as a SearchConfig."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from digmat.adsorption import ExecutionConfig, ReferenceResult, SearchConfig
from digmat.adsorption.search_config import split_settings
from digmat.adsorption.thermo import VIB_FLOOR

RESULTS = Path(__file__).resolve().parents[2] / "data" / "corpus" / "results"


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"temperatures": ()}, "temperatures"), ({"temperatures": (300.0, 0.0)}, "temperatures"),
    ({"temperatures": (float("inf"),)}, "temperatures"), ({"temperatures": "300"}, "temperatures"),
    ({"fmax": 0.0}, "fmax"), ({"fmax": float("nan")}, "fmax"), ({"fmax": "0.05"}, "fmax"),
    ({"max_steps": 0}, "max_steps"), ({"max_steps": 2.5}, "max_steps"), ({"max_steps": True}, "max_steps"),
    ({"num_random": -1}, "num_random"), ({"seed": -1}, "seed"), ({"seed": 1.0}, "seed"),
    ({"surface_mult": 0.9}, "surface_mult"), ({"surface_mult": 1.0}, "surface_mult"), ({"energy_tolerance": -1.0}, "energy_tolerance"),
    ({"heuristic": "False"}, "heuristic"), ({"vibrations": 2}, "vibrations"),
])
def test_search_config_is_validated(kwargs, match):
    with pytest.raises(ValueError, match=match) as info:
        SearchConfig(**kwargs)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"workers": 0}, "workers"), ({"threads": 1.5}, "threads"), ({"device": ""}, "device"),
    ({"scheduler": 8786}, "scheduler"),
])
def test_execution_config_is_validated(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ExecutionConfig(**kwargs)


def test_values_are_normalised_to_plain_python():
    """numpy scalars (a seed from an rng, a flag from an array) become JSON-ready Python values."""
    config = SearchConfig(temperatures=np.array([300, 600]), seed=np.int64(7), num_random=np.int32(2),
                          fmax=np.float32(0.1), vibrations=np.bool_(False))
    assert config.temperatures == (300.0, 600.0) and type(config.temperatures[0]) is float
    assert type(config.seed) is int and type(config.num_random) is int and type(config.fmax) is float
    assert config.vibrations is False
    assert SearchConfig(temperatures=450).temperatures == (450.0,)
    assert ExecutionConfig(workers=np.int64(2)).workers == 2


def test_keyword_overrides_replace_fields():
    config, execution = split_settings(SearchConfig(num_random=3), None, {"num_random": 5, "workers": 2})
    assert config == SearchConfig(num_random=5) and execution == ExecutionConfig(workers=2)
    with pytest.raises(ValueError, match="fmax"):  # overrides are validated like the config
        split_settings(None, None, {"fmax": -1.0})
    with pytest.raises(TypeError, match=r"refine_sites\(\).*fmx"):
        split_settings(None, None, {"fmx": 0.1}, caller="refine_sites")


def test_settings_round_trip_and_older_records():
    config = SearchConfig(temperatures=(300.0,), num_random=4, seed=11, surface_mult=1.2)
    record = {**config.settings(), "vib_floor": VIB_FLOOR}
    assert SearchConfig.from_settings(record, (300.0,)) == config
    # surface_mult 1.0 recorded by the retired single-cutoff test: rebuilt with today's cushion, which the
    # anomaly test accepts (it refuses 1.0: a rerun used to fail there after its relaxations)
    old = SearchConfig.from_settings({**record, "surface_mult": 1.0}, (300.0,))
    assert old.surface_mult == SearchConfig().surface_mult > 1 and old.num_random == 4
    with pytest.raises(ValueError, match="surface_mult must be > 1"):
        SearchConfig(surface_mult=1.0)
    assert "temperatures" not in config.settings()
    # a record without the newer fields takes their defaults
    assert SearchConfig.from_settings({"fmax": 0.1}) == SearchConfig(fmax=0.1)


def test_every_stored_result_loads_with_its_settings():
    """The corpus results written before SearchConfig load, and their settings are a SearchConfig's
    record with the same keys (plus vib_floor) — newly written files keep that format."""
    paths = sorted(RESULTS.glob("*.json"))
    assert paths
    keys = set(SearchConfig().settings()) | {"vib_floor"}
    later = {"hessian_delta"}  # fields added after the corpus was written: their defaults are what it used
    for path in paths:
        result = ReferenceResult.from_json(path)
        assert set(result.settings) <= keys and keys - set(result.settings) <= later, path.name
        config = result.search_config()
        assert config.temperatures == result.temperatures
        recorded = dict(result.settings)
        if recorded["surface_mult"] == 1.0:   # the retired single-cutoff test: rebuilt with today's cushion
            recorded["surface_mult"] = SearchConfig().surface_mult
        assert {**config.settings(), "vib_floor": result.settings["vib_floor"]} == {**SearchConfig().settings(), **recorded}, path.name
