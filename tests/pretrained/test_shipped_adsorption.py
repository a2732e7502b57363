"""The shipped default adsorption model: it loads offline, refuses what it never saw, and its
samples follow the CHGNet reference site searches committed in ``data/corpus/results``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from ase.build import fcc111

from digmat.adsorption import ReferenceResult, read_slab
from digmat.tasks.sampling import sample_adsorbates
from digmat.cli.main import main as digmat
from digmat.pretrained import DEFAULT_ADSORPTION_MODEL, load_model, shipped_models

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "data" / "corpus" / "results"


@pytest.fixture(scope="module")
def model():
    return load_model()


def test_default_model_ships_with_a_model_card(model):
    assert DEFAULT_ADSORPTION_MODEL in shipped_models()
    pt = Path(__file__).resolve().parents[2] / "digmat" / "pretrained" / f"{DEFAULT_ADSORPTION_MODEL}.pt"
    card = pt.with_suffix(".md")
    assert pt.stat().st_size < 5e6, "shipped weights must stay small"
    assert card.is_file() and "held-out" in card.read_text().lower()
    meta = model.metadata
    assert meta["recipe"] == "recipes/train_default_adsorption.py"
    assert "C2H3O" in model.config.adsorbates and "Pt" in model.config.elements  # the README's main command


def test_refuses_elements_and_adsorbates_it_never_saw(model):
    with pytest.raises(ValueError, match="not trained on Al"):
        sample_adsorbates(fcc111("Al", (3, 3, 4), vacuum=10.0), "O", model, num_samples=2)
    with pytest.raises(ValueError, match="not trained on the adsorbate"):
        sample_adsorbates(read_slab(ROOT / "data" / "Pt111_3x3x4.cif"), "H2O", model, num_samples=2)


def _site_shares(result) -> dict[str, float]:
    shares: dict[str, float] = {}
    for site in result.sites:
        shares[site.kind] = shares.get(site.kind, 0.0) + site.probability
    return shares


def test_oxygen_on_pt111_prefers_hollows_like_the_reference(model):
    """CHGNet's reference search (data/corpus/results/Pt-111-O.json) puts 99 % of O on Pt(111)
    in fcc hollows at 300 K and the ontop minimum 1.3 eV higher: the model's samples must sit
    mostly in hollows and almost never ontop."""
    ref = ReferenceResult.from_json(RESULTS / "Pt-111-O.json")
    p_ref = dict(zip([m.site_kind for m in ref.minima], ref.probabilities(300.0)))
    assert p_ref["hollow-fcc"] > 0.95  # the reference itself
    result = sample_adsorbates(ref.slab, ref.adsorbate, model, num_samples=128, temperature=300.0, seed=1)
    shares = _site_shares(result)
    hollow = shares.get("hollow-fcc", 0.0) + shares.get("hollow-hcp", 0.0)
    assert hollow >= 0.6, shares
    assert shares.get("ontop", 0.0) <= 0.1, shares


def test_readme_main_command(tmp_path, capsys):
    """`digmat adsorb data/Pt111_3x3x4.cif CH3CO` (fewer samples) writes complete outputs."""
    out = tmp_path / "out"
    rc = digmat(["adsorb", str(ROOT / "data" / "Pt111_3x3x4.cif"), "CH3CO", "-n", "32", "--out", str(out), "--json"])
    assert rc == 0
    summary = json.loads(capsys.readouterr().out)
    probs = [s["probability"] for s in summary["sites"]]
    assert np.isclose(sum(probs), 1.0) and summary["samples"] == 32
    assert summary["network_evaluations_per_sample"] <= 50
    assert {p.name for p in out.iterdir()} == {"configurations.extxyz", "sites.json", "sites.png"}
