"""Models shipped inside the package, and one loader for every digmat checkpoint.

Shipped weights live next to this file (``<name>.pt``) with a model card (``<name>.md``) that
says how they were trained (data, settings, time) and what they score on held-out data. They
are produced by digmat's own recipes; nothing is downloaded at run time.

Every checkpoint records its ``kind``; :func:`load_model` picks the model class by it, so
``load_model("adsorption")``, ``load_model("carbon24")`` and ``load_model("carbon24_gap")``
all work and return the model in eval mode with the checkpoint's ``.metadata`` and ``.kind``.
"""

from __future__ import annotations

import os
from importlib import import_module

import torch

from digmat.checkpoint import DEFAULT_MODEL, checkpoint_kind, load_checkpoint, resolve_checkpoint, shipped_models

__all__ = ["DEFAULT_ADSORPTION_MODEL", "LOADERS", "load_model", "resolve_checkpoint", "shipped_models"]

DEFAULT_ADSORPTION_MODEL = DEFAULT_MODEL

#: Model class of each checkpoint kind, as ``"module:Class"`` (imported on first use; each class
#: has ``from_payload(checkpoint_dict, ...)``).
LOADERS = {
    "adsorption": "digmat.models.adsorption:AdsorptionScoreModel",
    "crystal": "digmat.models.crystal:CrystalScoreModel",
    "bandgap_predictor": "digmat.design.predictor:BandGapPredictor",
    "peptide": "digmat.models.peptide:PeptideScoreModel",
    "ligand": "digmat.models.ligand:LigandScoreModel",
}


def load_model(model: str | os.PathLike | None = None, *, device: str | torch.device = "cpu", use_ema: bool = True):
    """Load any digmat model from a checkpoint path or a shipped model name.

    Parameters
    ----------
    model : str or path-like, optional
        Path to a ``.pt`` checkpoint written by digmat, or the name of a shipped model
        (:func:`shipped_models`; default: the shipped adsorption model).
    device : str or torch.device, default "cpu"
        Where to put the model.
    use_ema : bool, default True
        Use the exponential-moving-average weights when the checkpoint has them.

    Returns
    -------
    torch.nn.Module
        The model of the checkpoint's kind (:data:`LOADERS`) in eval mode, with ``.metadata``
        (the checkpoint's) and ``.kind``.
    """
    path = resolve_checkpoint(model)
    ckpt = load_checkpoint(path, map_location="cpu")
    try:
        kind = checkpoint_kind(ckpt)
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None
    if kind not in LOADERS:
        raise ValueError(f"{path} holds a {kind!r} model; this digmat loads {', '.join(sorted(LOADERS))}")
    module, name = LOADERS[kind].split(":")
    cls = getattr(import_module(module), name)
    try:
        net = cls.from_payload(ckpt, ema=use_ema)
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None
    net.kind = kind
    return net.to(device).eval()
