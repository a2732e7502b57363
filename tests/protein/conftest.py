"""Peptide fixtures: built once per session (each build embeds and minimises, ~0.5 s)."""

import pytest


@pytest.fixture(scope="session")
def alanine_dipeptide():
    """ACE-ALA-NME built by digmat (minimised in ff14SB + GBn2)."""
    pytest.importorskip("openmm", reason="needs the protein extra (openmm)")
    pytest.importorskip("rdkit", reason="needs the protein extra (rdkit)")
    from digmat.protein import build_peptide

    return build_peptide("A")
