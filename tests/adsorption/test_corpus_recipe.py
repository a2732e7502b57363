"""The corpus recipe's system list, held-out split and chunking (no calculations)."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pytest

from digmat.adsorption import get_adsorbate, parse_bulk_spec



@pytest.fixture(scope="module")
def recipe(load_recipe):
    return load_recipe("make_adsorption_corpus")


def test_coverage(recipe):
    rows = recipe.systems()
    metals = {"Pt", "Pd", "Cu", "Ag", "Au", "Ni", "Rh", "Ir"}
    assert metals <= set(recipe.METALS)
    assert {(1, 1, 1), (1, 0, 0), (2, 1, 1)} <= set(recipe.METAL_FACETS)
    alloy_surfaces = [(b, f) for b, f in recipe.surfaces() if len(parse_bulk_spec(b).elements) == 2]
    assert len(alloy_surfaces) >= 20
    names = {get_adsorbate(a).get_chemical_formula(mode="hill") for a in recipe.ADSORBATES}
    assert {"H", "O", "N", "C", "HO", "CO", "CH3", "CH3O", "H2N", "C2H3O"} <= names
    assert len(rows) == len(recipe.surfaces()) * len(recipe.ADSORBATES)
    assert len({r["sid"] for r in rows}) == len(rows)


def test_heldout_surfaces_and_compositions_never_in_training(recipe):
    rows = recipe.systems()
    train = {(r["bulk"], tuple(r["miller"])) for r in rows if r["split"] == "train"}
    held = {(r["bulk"], tuple(r["miller"])) for r in rows if r["split"] == "heldout"}
    assert held and train and not train & held  # whole surfaces
    train_bulks = {b for b, _ in train}
    for composition in recipe.HELD_OUT_COMPOSITIONS:
        assert composition not in train_bulks and any(b == composition for b, _ in held)
    # every surface carries all adsorbates in one split
    for surface in held:
        assert sum((r["bulk"], tuple(r["miller"])) == surface for r in rows) == len(recipe.ADSORBATES)


def test_chunks_partition_the_systems(recipe):
    rows = [r["sid"] for r in recipe.systems()]
    chunks = [rows[i::7] for i in range(7)]
    assert sorted(r for chunk in chunks for r in chunk) == sorted(rows)
    assert recipe.parse_chunk("3/7") == (3, 7)
    for bad in ("7/7", "a/b", "1"):
        with pytest.raises(argparse.ArgumentTypeError):
            recipe.parse_chunk(bad)


def test_status_counts_finished_systems(recipe, tmp_path):
    import json

    rows = recipe.systems()
    (tmp_path / "results").mkdir()
    finished = [r for r in rows if r["sid"] in ("Pt-111-H", "Pt3Ni-100-O", "Pd3Au-111-CO")]
    for i, r in enumerate(finished):
        (tmp_path / "results" / f"{r['sid']}.json").write_text(json.dumps({"cost": {"calls": 100 * (i + 1), "wall_seconds": 1800.0}}))
    status = recipe.corpus_status(rows, tmp_path)
    assert status["systems"]["train"]["done"] == 2 and status["systems"]["heldout"]["done"] == 1
    assert status["surfaces"]["heldout"]["covered"] == 1 and "Pd3Au-111" not in status["surfaces"]["heldout"]["missing"]
    assert status["adsorbates"]["train"]["H"] == 1 and status["adsorbates"]["heldout"]["CO"] == 1
    assert status["alloy_surfaces_covered"] == 2
    assert status["calculator_calls"] == 600 and status["relax_hours"] == 1.5


def test_committed_results_are_complete_and_normalised(recipe):
    """Every committed reference result belongs to the recipe, is complete, and its Boltzmann
    probabilities sum to 1 at each temperature (saddles carry none unless every stationary point is one)."""
    from digmat.adsorption import ReferenceResult

    results = sorted((Path(__file__).resolve().parents[2] / "data" / "corpus" / "results").glob("*.json"))
    if not results:
        pytest.skip("no committed corpus results")
    known = {r["sid"] for r in recipe.systems()}
    for path in results:
        result = ReferenceResult.from_json(path)
        assert result.system_id == path.stem and path.stem in known and result.complete
        assert result.minima and result.calculator == "chgnet"
        for temperature in result.temperatures:
            total = sum(m.probability[temperature] for m in result.minima)
            assert abs(total - 1.0) < 1e-3, (path.stem, temperature, total)
            if not all("saddle" in m.flags for m in result.minima):
                assert all(m.probability[temperature] == 0.0 for m in result.minima if "saddle" in m.flags)


def test_no_discarded_relaxation_undercuts_the_kept_minimum():
    """A relaxation discarded as an anomaly may lie more than 0.05 eV below the kept global
    minimum only when its stored geometry, re-checked, shows the anomaly (an adsorbate that
    went into the slab, a bond of the slab that broke or formed); unconverged or failed
    relaxations below it are never acceptable."""
    from digmat.adsorption import ReferenceResult
    from digmat.adsorption.anomalies import detect_anomalies

    results = sorted((Path(__file__).resolve().parents[2] / "data" / "corpus" / "results").glob("*.json"))
    if not results:
        pytest.skip("no committed corpus results")
    for path in results:
        result = ReferenceResult.from_json(path)
        lowest = min(m.energy for m in result.minima)
        for k, record in enumerate(result.placements):
            if record.energy is None or record.energy >= lowest - 0.05 or not record.flags:
                continue
            assert not {"unconverged", "failed"} & set(record.flags), (path.stem, record.index, record.flags)
            pair = result.relaxed_placement(k)
            assert pair is not None, f"{path.stem} placement {record.index}: discarded below the minimum, no geometry kept"
            again = detect_anomalies(*pair, surface_mult=result.settings.get("surface_mult", 1.5)).names()
            assert again and set(again) <= set(record.flags), (path.stem, record.index, record.flags, again)


FULL = Path(__file__).resolve().parents[2] / "data" / "corpus" / "full"


def test_full_searches_are_of_the_corpus_systems_and_undercut_nothing():
    """The committed AdsorbML-size searches (``data/corpus/full``: the site-finder placements plus
    100 random ones) are of exactly the corpus result's slab and adsorbate, complete and normalised,
    and no discarded relaxation of theirs lies more than 0.05 eV below their kept minimum without a
    re-checked anomaly; the corpus's reduced search found a global minimum within 0.05 eV of theirs."""
    from digmat.adsorption import ReferenceResult
    from digmat.adsorption.anomalies import detect_anomalies

    fulls = sorted(FULL.glob("*.json"))
    if not fulls:
        pytest.skip("no committed full searches")
    for path in fulls:
        full = ReferenceResult.from_json(path)
        corpus = ReferenceResult.from_json(FULL.parent / "results" / path.name)
        assert full.complete and full.calculator == corpus.calculator == "chgnet"
        assert full.settings["num_random"] >= 100 and len(full.placements) >= 100
        assert np.allclose(full.slab.positions, corpus.slab.positions) and list(full.slab.numbers) == list(corpus.slab.numbers)
        assert list(full.adsorbate.numbers) == list(corpus.adsorbate.numbers)
        for temperature in full.temperatures:
            assert abs(full.probabilities(temperature).sum() - 1.0) < 1e-9
        lowest = min(m.energy for m in full.minima)
        assert abs(min(m.energy for m in corpus.minima) - lowest) < 0.05, path.stem
        for k, record in enumerate(full.placements):
            if record.energy is None or record.energy >= lowest - 0.05 or not record.flags:
                continue
            assert not {"unconverged", "failed"} & set(record.flags), (path.stem, record.index, record.flags)
            pair = full.relaxed_placement(k)
            assert pair is not None and set(detect_anomalies(*pair, surface_mult=full.settings["surface_mult"]).names()) & set(record.flags)
