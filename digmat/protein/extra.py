"""The ``protein`` extra: OpenMM (force fields, implicit solvent) and RDKit (peptide graphs).

Every module of :mod:`digmat.protein` that needs them calls :func:`require_protein_extra`
first, so a missing package is one clear sentence, not an ``ImportError`` traceback.
"""

from __future__ import annotations

from digmat.extras import ExtraMissingError, install_hint, require_extra

__all__ = ["ProteinExtraMissingError", "require_protein_extra", "INSTALL_HINT"]

INSTALL_HINT = install_hint("protein")


class ProteinExtraMissingError(ExtraMissingError):
    """OpenMM or RDKit is not installed (install ``digmat[protein]``)."""


def require_protein_extra(*packages: str) -> None:
    """Raise :class:`ProteinExtraMissingError` naming any of ``packages`` that is missing.

    Parameters
    ----------
    *packages : str
        Import names to check; default ``("openmm", "rdkit")``.
    """
    require_extra("protein", *packages, error=ProteinExtraMissingError)
