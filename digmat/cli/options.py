"""Option helpers shared by the subcommands: one vocabulary, checked before any work.

Every number a command takes is range-checked by argparse (``type=positive(float)``), so a bad
value is refused at parse time with argparse's one-line message; devices, calculators and the
output folder are checked by :func:`resolve_device`, :func:`check_calculators` and
:func:`check_output_dir` before a model is loaded or a sample drawn.

Vocabulary
----------
``-T/--temperature``
    Kelvin; one value where a command samples at one temperature, a list where it takes several.
``--calculator``/``--relax``/``--refine``/``--reweight`` CALC
    A calculator name (``emt``, ``chgnet``, ``sevenn``); the option's name says what it is used for.
``--device``
    ``cpu``, ``cuda`` or ``cuda:N``.
``--out``
    Output folder (created; refused when it names a file or cannot be written).
``--json``
    Print the summary as JSON instead of a table.
``--traceback``
    Show the full error instead of one line (for bug reports); handled by :mod:`digmat.cli.main`.
"""

from __future__ import annotations

import argparse
import os
import re
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path

__all__ = ["SLAB_HELP", "load_slab", "add_device_option", "add_json_option", "add_out_option", "add_temperature_option", "at_least", "check_calculators",
           "check_output_dir", "non_negative", "positive", "resolve_device"]


def _number(kind: type, ok: Callable[[float], bool], need: str) -> Callable[[str], float]:
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {'an integer' if kind is int else 'a number'}") from None
        if value != value or not ok(value):  # NaN fails every comparison
            raise argparse.ArgumentTypeError(f"must be {need}, got {text}")
        return value

    parse.__name__ = kind.__name__  # argparse names the type in its messages
    return parse


def positive(kind: type = float) -> Callable[[str], float]:
    """argparse ``type=``: a number > 0 (``kind`` int or float; NaN and inf refused for floats)."""
    return _number(kind, lambda v: 0 < v < float("inf"), "> 0")


def non_negative(kind: type = float) -> Callable[[str], float]:
    """argparse ``type=``: a finite number >= 0."""
    return _number(kind, lambda v: 0 <= v < float("inf"), ">= 0")


def at_least(minimum: int) -> Callable[[str], int]:
    """argparse ``type=``: an integer >= ``minimum``."""
    return _number(int, lambda v: v >= minimum, f">= {minimum}")


def add_temperature_option(parser: argparse.ArgumentParser, *, default: float | list[float] | None, several: bool = False,
                           help: str | None = None) -> None:
    """``-T/--temperature`` in K: one value, or a list with ``several=True``."""
    if help is None:
        shown = " ".join(f"{t:g}" for t in default) if isinstance(default, list) else default
        help = f"temperature{'s' if several else ''} in K (default {shown})"
    parser.add_argument("-T", "--temperature", type=positive(float), nargs="+" if several else None, default=default, help=help)


def add_device_option(parser: argparse.ArgumentParser, *, default: str | None = "cpu", what: str = "the model") -> None:
    """``--device`` (checked by :func:`resolve_device`)."""
    shown = default or "cuda when available"
    parser.add_argument("--device", default=default, help=f"torch device of {what}: cpu, cuda or cuda:N (default {shown})")


def add_threads_option(parser: argparse.ArgumentParser) -> None:
    """``--threads N``: torch CPU threads of this process (applied by :func:`apply_threads`)."""
    parser.add_argument("--threads", type=at_least(1), default=None,
                        help="torch CPU threads (default: torch's, one per core); use fewer when other jobs share the cores")


def apply_threads(threads: int | None) -> None:
    """Set torch's intra-op threads to ``threads`` (None: leave torch's default).

    More threads than free cores make torch's threads wait on each other: measured 2026-12-06,
    2 cores, ``digmat train adsorption`` with 2 threads ran 6.7 steps/s alone and 0.65 steps/s
    beside a one-thread job (half the CPU time spent in the kernel).
    """
    if threads is not None:
        import torch

        torch.set_num_threads(threads)


def add_out_option(parser: argparse.ArgumentParser, default: str, *, required: bool = False) -> None:
    """``--out FOLDER`` (checked by :func:`check_output_dir`)."""
    if required:
        parser.add_argument("--out", required=True, help="output folder")
    else:
        parser.add_argument("--out", default=default, help=f"output folder (default ./{default})")


def add_json_option(parser: argparse.ArgumentParser) -> None:
    """``--json``: print the summary as JSON."""
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")


def resolve_device(spec: str | None):
    """The ``torch.device`` named by ``spec`` (None: CUDA when available), or a one-line ``ValueError``."""
    import torch

    if spec is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(spec)
    except (RuntimeError, TypeError):
        raise ValueError(f"--device {spec!r} is not a torch device; use cpu, cuda or cuda:N") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"--device {spec} requested but CUDA is not available on this machine")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ValueError(f"--device {spec}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    elif device.type != "cpu":
        raise ValueError(f"--device {spec}: digmat runs on cpu or cuda")
    return device


def check_calculators(*specs: tuple[str, str | None]) -> None:
    """Check ``(option, name)`` pairs: the name is known and its package importable, before any work.

    Raises ``ValueError`` naming the option (``--relax foo: unknown calculator ...``).
    """
    from digmat.calculators import PotentialNotInstalledError, check_calculator_name

    for option, name in specs:
        if name is None:
            continue
        try:
            check_calculator_name(name)
        except (ValueError, PotentialNotInstalledError) as exc:
            raise ValueError(f"{option}: {exc}") from None


def check_output_dir(path: str | os.PathLike, *, files: Iterable[str] = ()) -> Path:
    """Create the output folder ``path`` and prove it writable, before any work; return it.

    Refuses (one-line ``ValueError``) a path that is an existing file, a folder that cannot be
    created or written (read-only file system, permissions, full disk), and any of ``files``
    that exists inside it as a folder.
    """
    out = Path(path)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out}: a file of that name exists; give a folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out, prefix=".digmat-write-test-"):
            pass
    except OSError as exc:
        raise ValueError(f"--out {out}: cannot write there ({exc.strerror or exc})") from None
    for name in files:
        if (out / name).is_dir():
            raise ValueError(f"--out {out}: {name} there is a folder; the output file cannot replace it")
    return out


SLAB_HELP = "slab file (any ase.io format; OC20 tags inferred if absent) or a spec such as 'Pt(111)', 'Pt3Ni(211)', 'Cu(1,0,0)'"
_SLAB_SPEC = re.compile(r"^(?P<bulk>[A-Za-z0-9.:]+)\((?P<miller>[-0-9, ]+)\)$")


def load_slab(text: str):
    """A slab from a file path, or from a ``BULK(hkl)`` spec built with :func:`~digmat.adsorption.build_slab`."""
    from digmat.adsorption import build_slab, read_slab

    if Path(text).exists():
        return read_slab(text)
    m = _SLAB_SPEC.match(text.strip())
    if m is None:
        raise ValueError(f"no such slab file {text!r}, and it is not a slab spec such as 'Pt(111)' or 'Pt3Ni(1,0,0)'")
    digits = m["miller"].replace(" ", "")
    miller = tuple(int(x) for x in digits.split(",")) if "," in digits else tuple(int(c) for c in digits)
    return build_slab(m["bulk"], miller)
