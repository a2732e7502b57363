"""Crash-safe file writing: a temporary file next to the target, renamed into place.

Every file digmat writes (structures, JSON, plots, checkpoints, databases) goes through
:func:`atomic_path` or :func:`atomic_write_bytes`, so a crash, a kill or a full disk never
leaves a half-written target; the finished file gets the permissions the user's umask gives
a newly created file (``0o666 & ~umask``), not the ``0o600`` of a private temporary file; and
temporaries orphaned by an earlier kill during a write of the same target are removed.
"""

from __future__ import annotations

import contextlib
import glob
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

__all__ = ["atomic_path", "atomic_write_bytes", "default_file_mode"]

_TMP = ".tmp"


def default_file_mode() -> int:
    """``0o666 & ~umask``: the mode ``open(path, "w")`` would give a new file."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def _orphans(path: Path) -> list[Path]:
    return [p for p in path.parent.glob(f".{glob.escape(path.name)}.*{_TMP}*") if p.is_file()]


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """A temporary path next to ``path`` (same suffix, so format detection works); renamed onto
    ``path`` with the umask's permissions when the block succeeds, removed when it fails.

    The temporary file does not exist when the block starts (some writers, e.g. ``ase.db``,
    refuse an existing empty file).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    for stale in _orphans(path):  # left by a kill during an earlier write of this file
        stale.unlink(missing_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f"{_TMP}{path.suffix}", dir=path.parent)
    os.close(fd)
    os.unlink(tmp)
    try:
        yield Path(tmp)
        os.chmod(tmp, default_file_mode())
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


def atomic_write_bytes(path: str | os.PathLike, writer: Callable[[BinaryIO], object]) -> Path:
    """Call ``writer(file_object)`` on a temporary file next to ``path``, then rename it into place.

    A crash or an exception never leaves a half-written ``path`` behind. Returns ``path``.
    """
    path = Path(path)
    with atomic_path(path) as tmp:
        with open(tmp, "xb") as fh:
            writer(fh)
            fh.flush()
            os.fsync(fh.fileno())
    return path
