"""Without the protein extra, the module says how to install it (one sentence, no traceback)."""

import pytest

from digmat.protein import ProteinExtraMissingError, build_peptide, require_protein_extra
from digmat import extras as extra_module


def test_missing_packages_are_named_with_the_install_command(monkeypatch):
    monkeypatch.setattr(extra_module.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ProteinExtraMissingError, match=r'openmm and rdkit: pip install "digmat\[protein\]"'):
        require_protein_extra()
    with pytest.raises(ProteinExtraMissingError, match="digmat\\[protein\\]"):
        build_peptide("A")


def test_sequence_errors_come_before_the_extra_check(monkeypatch):
    monkeypatch.setattr(extra_module.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ValueError, match="'Z' at position 2"):
        build_peptide("AZ")
