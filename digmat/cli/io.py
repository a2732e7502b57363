"""Options and file handling shared by the subcommands that use a trained adsorption model."""

from __future__ import annotations

import argparse
from pathlib import Path

from ase import Atoms

from digmat.cli.options import add_device_option, add_json_option, add_temperature_option, resolve_device
from digmat.io import write_outputs

__all__ = ["add_model_arguments", "finish", "load_model_from_args", "read_configurations", "write_outputs"]


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """``--model``, ``-T/--temperature``, ``--device``, ``--json`` (see :func:`load_model_from_args`)."""
    parser.add_argument("--model", default=None, help="checkpoint path or shipped model name (default: the shipped model)")
    add_temperature_option(parser, default=300.0)
    add_device_option(parser)
    add_json_option(parser)


def finish(args: argparse.Namespace, summary: dict, files: dict, table) -> int:
    """The one output tail of every command: write ``files`` (see :func:`~digmat.io.write_outputs`)
    into ``args.out``, record their paths in ``summary["outputs"]``, then print the summary as
    JSON with ``--json`` or call ``table(summary)``. Returns the exit code 0."""
    import json

    summary["outputs"] = {k: str(v) for k, v in write_outputs(Path(args.out), files).items()}
    if getattr(args, "json", False):
        print(json.dumps(summary, indent=2))
    else:
        table(summary)
    return 0


def load_model_from_args(args: argparse.Namespace):
    """The model named by ``args.model`` on ``args.device`` (one-line errors for a bad device or file)."""
    from digmat.pretrained import load_model

    return load_model(args.model, device=resolve_device(args.device))


def read_configurations(spec: str, *, single: bool = False) -> list[Atoms]:
    """Read ``FILE`` (all frames) or ``FILE@INDEX`` (ASE's index syntax: ``3``, ``-1``, ``0:10``)."""
    from ase.io import read

    path, _, index = spec.partition("@") if "@" in spec and not Path(spec).is_file() else (spec, "", "")
    if not Path(path).is_file():
        raise FileNotFoundError(f"no such file: {path}")
    if Path(path).stat().st_size == 0:
        raise ValueError(f"{path} is empty")
    if index:
        from ase.io.formats import string2index

        try:
            parsed = string2index(index)
        except ValueError:
            parsed = None
        if not isinstance(parsed, (int, slice)):
            raise ValueError(f"{spec}: {index!r} is not a frame index (ASE syntax: 3, -1, 0:10)") from None
    try:
        images = read(path, index=index or ":")
    except (IndexError, StopIteration):
        count = len(read(path, index=":"))
        raise ValueError(f"{spec}: {path} holds {count} configuration{'s' if count != 1 else ''} (indices 0..{count - 1})") from None
    except Exception as exc:  # ase raises many kinds for unreadable files
        raise ValueError(f"cannot read {path}: {' '.join(str(exc).split()) or type(exc).__name__}") from None
    images = [images] if isinstance(images, Atoms) else list(images)
    if not images:
        raise ValueError(f"{spec} selects no configurations")
    if single and len(images) != 1:
        raise ValueError(f"{spec} holds {len(images)} configurations; pick one with {path}@INDEX")
    return images
