"""Models shipped inside the package, and loading of any digmat checkpoint.

Shipped weights live next to this file (``<name>.pt``) with a model card (``<name>.md``) that
says how they were trained (data, settings, time) and what they score on held-out data. They
are produced by digmat's own recipes; nothing is downloaded at run time.
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

import torch

from digmat.checkpoint import load_checkpoint

__all__ = ["DEFAULT_ADSORPTION_MODEL", "load_model", "resolve_checkpoint", "shipped_models"]

DEFAULT_ADSORPTION_MODEL = "adsorption"


def shipped_models() -> list[str]:
    """Names of the models shipped with this installation."""
    root = resources.files(__name__)
    return sorted(p.name[:-3] for p in root.iterdir() if p.name.endswith(".pt"))


def resolve_checkpoint(model: str | os.PathLike | None = None) -> Path:
    """The checkpoint file of ``model``: an existing file's path, or the name of a shipped model
    (None: the default adsorption model). FileNotFoundError names the shipped models otherwise."""
    if model is None:
        model = DEFAULT_ADSORPTION_MODEL
    path = Path(model)
    if path.is_file():
        return path
    shipped = resources.files(__name__) / f"{model}.pt"
    if shipped.is_file():
        return Path(str(shipped))
    available = shipped_models()
    hint = f"shipped models: {', '.join(available)}" if available else "this installation ships no trained model yet"
    raise FileNotFoundError(
        f"no model {str(model)!r}: not a checkpoint file and not a shipped model ({hint}). "
        "Train one (`digmat train adsorption --data LMDB --out DIR`, recipes/train_carbon.py) and pass DIR/model.pt."
    )


def load_model(model: str | os.PathLike | None = None, *, device: str | torch.device = "cpu", use_ema: bool = True):
    """Load an adsorption score model from a checkpoint path or a shipped model name.

    Parameters
    ----------
    model
        Path to a ``.pt`` checkpoint written by digmat, or the name of a shipped model
        (default: the shipped adsorption model).
    device
        Where to put the model.
    use_ema
        Use the exponential-moving-average weights when the checkpoint has them.

    Returns
    -------
    digmat.models.AdsorptionScoreModel in eval mode, with ``.metadata`` from the checkpoint.
    """
    from digmat.models import AdsorptionModelConfig, AdsorptionScoreModel

    path = resolve_checkpoint(model)
    ckpt = load_checkpoint(path, map_location="cpu")
    try:
        config = AdsorptionModelConfig.from_dict(ckpt["config"])
    except (KeyError, TypeError) as exc:
        raise ValueError(f"{path} is not an adsorption model checkpoint: {exc}") from exc
    net = AdsorptionScoreModel(config)
    state = ckpt["ema_state_dict"] if use_ema and ckpt["ema_state_dict"] is not None else ckpt["state_dict"]
    net.load_state_dict(state)
    net.metadata = dict(ckpt["metadata"])
    return net.to(device).eval()
