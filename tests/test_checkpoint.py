import numpy as np
import pytest
import torch

from digmat.checkpoint import load_checkpoint, save_checkpoint


def test_metadata_with_str_and_number_subclasses_loads_weights_only(tmp_path):
    """torch.__version__ (a str subclass) and numpy scalars pass json.dumps but would be pickled
    as their classes; they are stored as builtins so weights_only loading still works."""
    meta = {"torch": torch.__version__, "loss": np.float64(0.2), "steps": np.int64(7), "pair": (1, 2), "flag": np.bool_(True)}
    path = save_checkpoint(tmp_path / "m.pt", config={"a": [1, 2]}, state_dict={"w": torch.ones(2)}, metadata=meta)
    back = load_checkpoint(path)["metadata"]
    assert back == {"torch": str(torch.__version__), "loss": 0.2, "steps": 7, "pair": (1, 2), "flag": True}
    assert type(back["torch"]) is str and type(back["loss"]) is float and type(back["steps"]) is int


def test_unserialisable_metadata_is_refused(tmp_path):
    with pytest.raises(ValueError, match="plain JSON-able"):
        save_checkpoint(tmp_path / "m.pt", config={}, state_dict={}, metadata={"x": object()})
    assert not (tmp_path / "m.pt").exists()


def test_kind_is_recorded_and_a_kindless_checkpoint_is_refused(tmp_path):
    from digmat import load_model
    from digmat.checkpoint import checkpoint_kind, load_checkpoint

    path = save_checkpoint(tmp_path / "x.pt", config={"a": 1}, state_dict={}, metadata={}, kind="crystal")
    assert checkpoint_kind(load_checkpoint(path)) == "crystal"
    path = save_checkpoint(tmp_path / "y.pt", config={"a": 1}, state_dict={}, metadata={"kind": "mystery"})
    assert checkpoint_kind(load_checkpoint(path)) == "mystery"
    with pytest.raises(ValueError, match="this digmat loads adsorption, bandgap_predictor, crystal"):
        load_model(path)
    path = save_checkpoint(tmp_path / "z.pt", config={"a": 1}, state_dict={}, metadata={})
    with pytest.raises(ValueError, match="records no model kind"):
        load_model(path)
