"""recipes/anharmonic_reference.py: a run on a small EMT search gives the library's own figures
(same seed, same corrections), call accounting, populations that sum to one, and one-line errors."""

from __future__ import annotations

import numpy as np
import pytest
from ase.build import fcc111

from digmat.adsorption import (
    ReferenceResult,
    anharmonic_corrections,
    anharmonic_probabilities,
    anharmonic_site_probabilities,
    convert_ase_tags,
    reference_search,
)


@pytest.fixture(scope="module")
def search(tmp_path_factory):
    result = reference_search(convert_ase_tags(fcc111("Pt", (2, 2, 3), vacuum=8.0)), "O", "emt", num_random=0, seed=0)
    path = tmp_path_factory.mktemp("anh") / "Pt-111-O.json"
    result.to_json(path)
    return result, path


def test_the_recipe_reports_the_librarys_corrections(load_recipe, search, one_thread):
    _, path = search
    result = ReferenceResult.from_json(path)  # the stored Hessians (rounded) are what the recipe sees
    out = load_recipe("anharmonic_reference").main([str(path), "-T", "600", "--num-samples", "16", "--max-samples", "32", "--seed", "2"])
    (system,) = out["systems"]
    row = system["temperatures"]["600K"]
    assert system["calculator"] == "emt" == system["reference_calculator"]
    corrections = anharmonic_corrections(result, "emt", 600.0, num_samples=16, max_samples=32, seed=2)
    np.testing.assert_allclose(row["harmonic"], result.probabilities(600.0), atol=1e-4)
    np.testing.assert_allclose(row["anharmonic"], anharmonic_probabilities(result, corrections), atol=1e-4)
    assert sum(row["anharmonic"]) == pytest.approx(1.0, abs=1e-3)
    kinds = anharmonic_site_probabilities(result, corrections)
    assert row["anharmonic_site_kinds"] == pytest.approx(kinds, abs=1e-4) and sum(kinds.values()) == pytest.approx(1.0)
    assert row["calls"] == sum(c.calls for c in corrections) and 16 * len(corrections) <= row["calls"] <= 32 * len(corrections)
    assert row["converged"] == all(c.converged for c in corrections)
    assert [m["correction_eV"] for m in row["minima"]] == pytest.approx([c.correction for c in corrections], abs=1e-5)


@pytest.mark.parametrize("argv, message", [
    (["no/such.json"], "no such reference result"),
    (["{path}", "-T", "0"], "positive"),
    (["{path}", "--num-samples", "8", "--max-samples", "4"], "max-samples"),
    (["{path}", "--calculator", "nonsense"], "nonsense"),
])
def test_bad_arguments_are_one_line_errors(load_recipe, search, capsys, argv, message):
    _, path = search
    with pytest.raises(SystemExit) as exc:
        load_recipe("anharmonic_reference").main([a.format(path=path) for a in argv])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert message in err and "Traceback" not in err
