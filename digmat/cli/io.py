"""Options and file handling shared by the subcommands that use a trained adsorption model."""

from __future__ import annotations

import argparse
from pathlib import Path

from ase import Atoms

from digmat.io import write_outputs

__all__ = ["add_model_arguments", "load_model_from_args", "read_configurations", "write_outputs"]


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """``--model``, ``-T/--temperature``, ``--device``, ``--json`` (see :func:`load_model_from_args`)."""
    parser.add_argument("--model", default=None, help="checkpoint path or shipped model name (default: the shipped model)")
    parser.add_argument("-T", "--temperature", type=float, default=300.0, help="temperature in K (default 300)")
    parser.add_argument("--device", default="cpu", help="torch device (cpu, cuda)")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")


def load_model_from_args(args: argparse.Namespace):
    """The model named by ``args.model`` on ``args.device`` (clear errors for a missing CUDA)."""
    import torch

    from digmat.pretrained import load_model

    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda requested but CUDA is not available")
    return load_model(args.model, device=device)


def read_configurations(spec: str, *, single: bool = False) -> list[Atoms]:
    """Read ``FILE`` (all frames) or ``FILE@INDEX`` (ASE's index syntax: ``3``, ``-1``, ``0:10``)."""
    from ase.io import read

    path, _, index = spec.partition("@") if "@" in spec and not Path(spec).is_file() else (spec, "", "")
    if not Path(path).is_file():
        raise FileNotFoundError(f"no such file: {path}")
    if Path(path).stat().st_size == 0:
        raise ValueError(f"{path} is empty")
    try:
        images = read(path, index=index or ":")
    except Exception as exc:  # ase raises many kinds for unreadable files
        raise ValueError(f"cannot read {path}: {exc}") from None
    images = [images] if isinstance(images, Atoms) else list(images)
    if not images:
        raise ValueError(f"{spec} selects no configurations")
    if single and len(images) != 1:
        raise ValueError(f"{spec} holds {len(images)} configurations; pick one with {path}@INDEX")
    return images
