"""Helpers shared by the recipe tests."""

from pathlib import Path

import pytest

CORPUS_RESULT = Path(__file__).resolve().parents[2] / "data" / "corpus" / "results" / "Cu-111-H.json"
"""A committed corpus result the adsorption recipes' smoke runs start from."""

needs_corpus_result = [pytest.mark.skipif(not CORPUS_RESULT.is_file(), reason="corpus result Cu-111-H.json not present"),
                       pytest.mark.usefixtures("one_thread")]
"""``pytestmark`` of a module that runs on :data:`CORPUS_RESULT` with one torch thread."""


def total_variation(p: dict, q: dict) -> float:
    """½ Σ |p_k − q_k|, written out independently of the package's."""
    return 0.5 * sum(abs(p.get(k, 0.0) - q.get(k, 0.0)) for k in set(p) | set(q))
