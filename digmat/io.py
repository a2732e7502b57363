"""Atomic writers for the files digmat produces: never a half-written output.

Each writes to a temporary file next to the target and renames it into place
(:func:`digmat.files.atomic_write_bytes`, with the umask's permissions).
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ase import Atoms

from digmat.files import atomic_write_bytes

__all__ = ["write_extxyz", "write_json", "write_outputs"]


def write_extxyz(path: str | os.PathLike, images: Sequence[Atoms]) -> Path:
    """Write ``images`` as extended XYZ (info and arrays kept) to ``path`` atomically."""
    from ase.io import write

    buf = io.StringIO()
    write(buf, list(images), format="extxyz")
    return atomic_write_bytes(path, lambda fh: fh.write(buf.getvalue().encode()))


def write_json(path: str | os.PathLike, data: Any) -> Path:
    """Write ``data`` as indented JSON to ``path`` atomically."""
    blob = json.dumps(data, indent=2).encode()
    return atomic_write_bytes(path, lambda fh: fh.write(blob))


def write_outputs(out_dir: str | os.PathLike, files: dict[str, tuple[str, Any]]) -> dict[str, Path]:
    """Write several outputs into ``out_dir``: ``{key: (file name, payload)}``.

    A payload is a list of Atoms (extxyz), a dict (JSON) or a callable taking a binary file
    object (e.g. a plot's ``savefig`` wrapper). Returns ``{key: path}``.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {}
    for key, (name, payload) in files.items():
        path = out / name
        if callable(payload):
            atomic_write_bytes(path, payload)
        elif isinstance(payload, dict):
            write_json(path, payload)
        else:
            write_extxyz(path, payload)
        paths[key] = path
    return paths
