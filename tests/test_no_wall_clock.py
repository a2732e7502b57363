"""No test asserts on wall-clock time: timings depend on the machine and its load, not on the code.

A test may record or print a duration; it may not assert on one. The check follows values read
from the clock (``time.perf_counter()``, ``time.time()`` ...) through assignments inside each
function and fails on an ``assert`` that uses them.
"""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parent
CLOCKS = {"perf_counter", "perf_counter_ns", "time", "time_ns", "monotonic", "monotonic_ns", "process_time", "process_time_ns"}


def _reads_clock(node: ast.AST, tainted: set[str]) -> bool:
    for sub in ast.walk(node):
        if isinstance(sub, ast.Name) and sub.id in tainted:
            return True
        if isinstance(sub, ast.Call):
            func = sub.func
            if isinstance(func, ast.Attribute) and func.attr in CLOCKS and isinstance(func.value, ast.Name) and func.value.id == "time":
                return True
            if isinstance(func, ast.Name) and func.id in CLOCKS - {"time"}:  # from time import perf_counter
                return True
    return False


def wall_clock_asserts(source: str) -> list[int]:
    """Line numbers of the asserts in ``source`` that depend on a clock reading."""
    lines = []
    for func in ast.walk(ast.parse(source)):
        if not isinstance(func, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        tainted: set[str] = set()
        for node in sorted((n for n in ast.walk(func) if isinstance(n, (ast.Assign, ast.AugAssign, ast.AnnAssign, ast.Assert))),
                           key=lambda n: (n.lineno, n.col_offset)):
            if isinstance(node, ast.Assert):
                if _reads_clock(node.test, tainted):
                    lines.append(node.lineno)
            elif node.value is not None and _reads_clock(node.value, tainted):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                tainted |= {n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)}
    return sorted(set(lines))


def test_the_check_finds_a_timing_assert():
    bound = "import time\ndef test_x():\n    t0 = time.perf_counter()\n    run()\n    elapsed = time.perf_counter() - t0\n    assert elapsed < 120\n"
    assert wall_clock_asserts(bound) == [6]
    inline = "import time\ndef test_x():\n    assert time." + "time() - T0 < 5\n"  # split so this file holds no such assert
    assert wall_clock_asserts(inline) == [3]
    recorded = "import time\ndef test_x():\n    t0 = time.perf_counter()\n    out = run()\n    print(time.perf_counter() - t0)\n    assert out['seconds'] > 0\n"
    assert wall_clock_asserts(recorded) == []


def test_no_test_asserts_wall_clock_time():
    found = {str(path.relative_to(TESTS)): hits for path in sorted(TESTS.rglob("*.py"))
             if path.name != Path(__file__).name and (hits := wall_clock_asserts(path.read_text()))}
    assert not found, f"tests asserting on wall-clock time (file: lines): {found}"
