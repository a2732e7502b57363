"""``digmat reference``'s options become one SearchConfig and one ExecutionConfig
(the end-to-end run: ``tests/adsorption/test_reference.py::test_cli``)."""

from __future__ import annotations

import argparse

import pytest

from digmat.adsorption import ExecutionConfig, SearchConfig
from digmat.cli.reference import add_arguments, search_settings


def _parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(["slab.cif", "O", *argv])


def test_defaults_are_the_configs_defaults():
    """The command line's defaults are SearchConfig's and ExecutionConfig's (no drift)."""
    assert search_settings(_parse()) == (SearchConfig(), ExecutionConfig())


def test_every_option_reaches_its_field():
    config, execution = search_settings(_parse(
        "-T", "400", "800", "--random", "5", "--no-heuristic", "--fixed-surface", "--fmax", "0.1", "--max-steps", "40",
        "--seed", "7", "--no-vibrations", "--vib-surface", "--workers", "2", "--threads", "3", "--scheduler", "local"))
    assert config == SearchConfig(temperatures=(400.0, 800.0), num_random=5, heuristic=False, relax_surface=False, fmax=0.1,
                                  max_steps=40, seed=7, vibrations=False, vib_surface=True)
    assert execution == ExecutionConfig(workers=2, threads=3, device="cpu", scheduler="local")


def test_bad_numbers_are_refused_by_the_parser():
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    for bad in (["--fmax", "0"], ["--max-steps", "0"], ["--random", "-1"], ["-T", "0"]):
        with pytest.raises(SystemExit):
            parser.parse_args(["slab.cif", "O", *bad])
