"""Helpers shared by the CLI tests."""

from digmat.cli.main import main


def run(capsys, *argv):
    """Exit code (argparse's refusals included), stdout, stderr of ``digmat ARGV``."""
    try:
        code = main([str(a) for a in argv])
    except SystemExit as exc:
        code = exc.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err
