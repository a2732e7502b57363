"""Optional dependency groups ("extras") and the one-sentence error when one is missing.

Each subpackage that needs an extra calls :func:`require_extra` before importing it, so a
missing package is a clear instruction (``pip install "digmat[NAME]"``), not an ``ImportError``
traceback from deep inside.
"""

from __future__ import annotations

import importlib.util

__all__ = ["EXTRAS", "ExtraMissingError", "install_hint", "require_extra"]

#: Import names each extra provides (the ``pyproject.toml`` groups of the same name).
EXTRAS: dict[str, tuple[str, ...]] = {
    "protein": ("openmm", "rdkit"),
    "ligand": ("rdkit", "openmm", "vina", "meeko", "gemmi", "gfnff", "posebusters"),
}


class ExtraMissingError(ImportError):
    """A package of an optional extra is not installed."""


def install_hint(extra: str) -> str:
    """The pip command that installs ``extra``."""
    return f'pip install "digmat[{extra}]"'


def require_extra(extra: str, *packages: str, error: type[ExtraMissingError] = ExtraMissingError) -> None:
    """Raise ``error`` naming every one of ``packages`` (default: all of ``extra``'s) that is missing.

    Parameters
    ----------
    extra : str
        Name of the extra, a key of :data:`EXTRAS`.
    *packages : str
        Import names to check; default all of the extra's.
    error : type
        The :class:`ExtraMissingError` subclass to raise.
    """
    if extra not in EXTRAS:
        raise KeyError(f"unknown extra {extra!r}; known: {', '.join(EXTRAS)}")
    missing = [p for p in (packages or EXTRAS[extra]) if importlib.util.find_spec(p) is None]
    if missing:
        raise error(f"the {extra} module needs {' and '.join(missing)}: {install_hint(extra)}")
