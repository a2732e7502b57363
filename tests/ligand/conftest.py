"""Ligand fixtures live in tests/conftest.py (the models, tasks and CLI tests share them)."""
