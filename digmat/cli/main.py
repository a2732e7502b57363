"""Entry point of the ``digmat`` command.

Each subcommand lives in its own module exposing ``add_arguments(parser)`` and
``run(args) -> int``; modules are imported lazily so ``digmat --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import warnings

from digmat import __version__

# name -> (module, one-line help)
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "adsorb": ("digmat.cli.adsorb", "sample adsorbate configurations on a slab and report adsorption-site probabilities"),
    "density": ("digmat.cli.density", "log-density of adsorbate configurations (probability-flow ODE) and an in-plane probability map"),
    "interpolate": ("digmat.cli.interpolate", "path between two adsorbate configurations through the model's latent space"),
    "generate": ("digmat.cli.generate", "crystals from a crystal score model (shipped: carbon24), unguided or band-gap guided"),
    "peptide": ("digmat.cli.peptide", "conformational ensemble of a capped peptide: Ramachandran basins with probabilities (protein extra)"),
    "ligand": ("digmat.cli.ligand", "binding modes of a ligand in a protein pocket with probabilities, PoseBusters-checked (ligand extra)"),
    "demo": ("digmat.cli.demo", "sample, score and interpolate an exact target with the diffusion core"),
    "train": ("digmat.cli.train", "train a model (adsorption) from an OC20-format LMDB, with resume and DDP"),
    "reference": ("digmat.cli.reference", "reference adsorption-site search: minima, sites, free energies, probabilities"),
}


class CLIError(Exception):
    """A user-facing error: printed without a traceback, exit code 2."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="digmat",
        description="Distributional Graphormer (DiG) for equilibrium distributions of atomic structures.",
    )
    parser.add_argument("--version", action="version", version=f"digmat {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (_, help_text) in SUBCOMMANDS.items():
        sub.add_parser(name, help=help_text, description=help_text)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    # Parse the command name first, then let its module add its own options.
    known, _ = parser.parse_known_args(argv[:1] if argv and not argv[0].startswith("-") else argv)
    if known.command is None:
        parser.print_help()
        return 0
    module = importlib.import_module(SUBCOMMANDS[known.command][0])
    sub_parser = argparse.ArgumentParser(prog=f"digmat {known.command}", description=SUBCOMMANDS[known.command][1])
    module.add_arguments(sub_parser)
    sub_parser.add_argument("--traceback", action="store_true", help="on an error, show the full traceback (for bug reports)")
    try:
        args = sub_parser.parse_args(argv[1:])
    except SystemExit as exc:  # argparse printed its one-line usage error (or the help)
        return int(exc.code or 0)
    prefix = f"digmat {known.command}"
    with warnings.catch_warnings():
        warnings.showwarning = _one_line_warning(prefix)
        try:
            return int(module.run(args) or 0)
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            return 130
        except Exception as exc:  # noqa: BLE001 - every error becomes one line unless --traceback
            if args.traceback:
                raise
            print(f"{prefix}: error: {_describe(exc)}", file=sys.stderr)
            return 2


def _describe(exc: BaseException) -> str:
    """One line for an exception: the message of a user-facing error, the type and message of a bug."""
    if isinstance(exc, OSError) and exc.strerror:
        where = exc.filename if exc.filename is not None else ""
        return f"{where}: {exc.strerror}" if where else exc.strerror
    text = " ".join(str(exc).split()) or type(exc).__name__
    if isinstance(exc, (CLIError, ValueError, FileNotFoundError, ImportError)):
        return text
    return f"{type(exc).__name__}: {text} (rerun with --traceback for the full error)"


def _one_line_warning(prefix: str):
    def show(message, category, filename, lineno, file=None, line=None):
        print(f"{prefix}: warning: {' '.join(str(message).split())}", file=sys.stderr if file is None else file)

    return show


if __name__ == "__main__":
    raise SystemExit(main())
