"""Checkpoints: plain dictionaries of tensors and JSON-able data, loaded with ``weights_only=True``.

Format (``format_version`` 1)::

    {
      "format_version": 1,
      "config":         dict  — the model's frozen dataclass as plain data (``to_dict()``),
      "state_dict":     dict  — model parameters and buffers,
      "ema_state_dict": dict | None — exponential-moving-average weights (used for sampling),
      "metadata":       dict  — free-form JSON-able facts (data, settings, scores, versions),
      "training_state": dict | None — optimizer, schedule, step and RNG states for exact resume
                                      (dropped from shipped models),
    }

No pickled modules or classes: the loader never executes code from the file.
"""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path
from typing import Any

import torch

from digmat.files import atomic_write_bytes

__all__ = ["FORMAT_VERSION", "SHIPPED_DIR", "atomic_write_bytes", "checkpoint_kind", "load_checkpoint",
           "model_from_payload", "resolve_checkpoint", "save_checkpoint", "shipped_models"]

FORMAT_VERSION = 1
_REQUIRED = ("format_version", "config", "state_dict", "ema_state_dict", "metadata")
#: Folder of the shipped models (``<name>.pt`` + model card ``<name>.md``), inside the package.
SHIPPED_DIR = Path(__file__).resolve().parent / "pretrained"
DEFAULT_MODEL = "adsorption"


def shipped_models() -> list[str]:
    """Names of the models shipped with this installation."""
    return sorted(p.stem for p in SHIPPED_DIR.glob("*.pt"))


def resolve_checkpoint(model: str | os.PathLike | None = None) -> Path:
    """The checkpoint file of ``model``: an existing file's path, or the name of a shipped model
    (None: the default adsorption model). FileNotFoundError names the shipped models otherwise."""
    if model is None:
        model = DEFAULT_MODEL
    path = Path(model)
    if path.is_file():
        return path
    shipped = SHIPPED_DIR / f"{model}.pt"
    if shipped.is_file():
        return shipped
    available = shipped_models()
    hint = f"shipped models: {', '.join(available)}" if available else "this installation ships no trained model yet"
    raise FileNotFoundError(
        f"no model {str(model)!r}: not a checkpoint file and not a shipped model ({hint}). "
        "Train one (`digmat train adsorption --data LMDB --out DIR`, recipes/train_carbon.py) and pass DIR/model.pt."
    )


def checkpoint_kind(payload: dict[str, Any]) -> str:
    """The model kind a checkpoint holds (``"adsorption"``, ``"crystal"``, ``"bandgap_predictor"``, ...).

    Read from the checkpoint's ``kind`` (or ``metadata["kind"]``); adsorption checkpoints written
    before kinds were recorded are recognised by their configuration.
    """
    kind = payload.get("kind") or payload.get("metadata", {}).get("kind")
    if kind:
        return str(kind)
    config = payload.get("config")
    if isinstance(config, dict) and {"temperature_range", "adsorbates", "state"} <= set(config):
        return "adsorption"
    raise ValueError("the checkpoint records no model kind")


def _plain(value: Any) -> Any:
    """Builtin types only: subclasses of str/int/float (``torch.__version__``, numpy scalars)
    would be pickled as their class and refused by ``weights_only=True``."""
    if hasattr(value, "item") and getattr(value, "shape", None) == ():  # numpy / torch scalars
        value = value.item()
    if isinstance(value, dict):
        return {_plain(k): _plain(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return tuple(_plain(v) for v in value)
    if isinstance(value, list):
        return [_plain(v) for v in value]
    for kind in (bool, str, int, float):
        if isinstance(value, kind):
            return kind(value)
    return value


def save_checkpoint(
    path: str | os.PathLike,
    *,
    config: dict[str, Any],
    state_dict: dict[str, torch.Tensor],
    ema_state_dict: dict[str, torch.Tensor] | None = None,
    metadata: dict[str, Any] | None = None,
    training_state: dict[str, Any] | None = None,
    kind: str | None = None,
) -> Path:
    """Write a checkpoint atomically (temporary file, then rename).

    ``kind`` names the model family for :func:`digmat.load_model` (default: ``metadata["kind"]``).

    ``config`` and ``metadata`` must be JSON-serialisable plain data (checked here, so a
    checkpoint can always be read back with ``weights_only=True``).
    """
    config, metadata = _plain(config), _plain(metadata or {})
    for name, value in (("config", config), ("metadata", metadata)):
        try:
            json.dumps(value)
        except TypeError as exc:
            raise ValueError(f"checkpoint {name} must be plain JSON-able data: {exc}") from exc
    payload = {
        "format_version": FORMAT_VERSION,
        "config": dict(config),
        "state_dict": {k: v.detach().cpu() for k, v in state_dict.items()},
        "ema_state_dict": None if ema_state_dict is None else {k: v.detach().cpu() for k, v in ema_state_dict.items()},
        "metadata": dict(metadata or {}),
        "training_state": training_state,
        "kind": kind or (metadata or {}).get("kind"),
    }
    return atomic_write_bytes(path, lambda fh: torch.save(payload, fh))


def load_checkpoint(path: str | os.PathLike, *, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read and validate a checkpoint written by :func:`save_checkpoint` (``weights_only=True``)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    if path.stat().st_size == 0:
        raise ValueError(f"{path} is empty (0 bytes), not a digmat checkpoint")
    if not zipfile.is_zipfile(path):
        raise ValueError(f"{path} is not a digmat checkpoint (not a torch.save archive: damaged, truncated or another kind of file)")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises many types for a bad file
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ValueError(f"{path} is not a readable digmat checkpoint ({reason})") from None
    if not isinstance(payload, dict) or any(k not in payload for k in _REQUIRED):
        raise ValueError(f"{path} is not a digmat checkpoint (expected keys {_REQUIRED})")
    if payload["format_version"] != FORMAT_VERSION:
        raise ValueError(f"{path} has checkpoint format {payload['format_version']}; this digmat reads {FORMAT_VERSION}")
    payload.setdefault("training_state", None)
    return payload


def model_from_payload(model_cls, config_cls, ckpt: dict[str, Any], *, ema: bool = True, what: str = "model"):
    """Build ``model_cls(config)`` from a loaded checkpoint payload: EMA weights by default, eval mode.

    Parameters
    ----------
    model_cls, config_cls : type
        The ``nn.Module`` and its frozen config dataclass (with ``from_dict``).
    ckpt : dict
        A payload from :func:`load_checkpoint`.
    ema : bool
        Use ``ema_state_dict`` when the checkpoint has one.
    what : str
        Name for the error message ("adsorption model", ...).

    Raises
    ------
    ValueError
        If the payload's config does not build ``config_cls``.
    """
    try:
        config = config_cls.from_dict(ckpt["config"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"not a {what} checkpoint: {exc}") from exc
    model = model_cls(config)
    use_ema = ema and ckpt.get("ema_state_dict") is not None
    model.load_state_dict(ckpt["ema_state_dict"] if use_ema else ckpt["state_dict"])
    model.metadata = dict(ckpt["metadata"])
    return model.eval()
