"""Smoke test of recipes/train_default_adsorption.py: datasets from a two-system corpus (one
training, one held-out system), a few training steps, and ``--ship PATH`` writing a loadable model
whose metadata records how it was trained."""

import shutil
from pathlib import Path

import torch

from digmat.pretrained import load_model

RESULTS = Path(__file__).resolve().parents[2] / "data" / "corpus" / "results"


def test_train_and_ship_a_two_system_corpus(load_recipe, tmp_path):
    corpus = tmp_path / "corpus"
    (corpus / "results").mkdir(parents=True)
    for name in ("Pt-111-O", "Ir-111-O"):  # Ir(111) is a held-out surface
        shutil.copy(RESULTS / f"{name}.json", corpus / "results")
    shipped = tmp_path / "shipped.pt"
    recipe = load_recipe("train_default_adsorption")
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        assert recipe.main(["--corpus", str(corpus), "--out", str(tmp_path / "run"), "--steps", "3", "--batch-size", "4",
                            "--samples", "4", "--lr", "1e-3", "--ema-decay", "0.9", "--target", "pooled", "--threads", "1",
                            "--ship", str(shipped)]) == 0
        assert torch.get_num_threads() == 1  # --threads reached digmat train
    finally:
        torch.set_num_threads(before)

    assert sorted(p.name for p in (corpus / "datasets" / "train").glob("*.lmdb")) == ["Pt-111-O.lmdb"]
    assert sorted(p.name for p in (corpus / "datasets" / "heldout").glob("*.lmdb")) == ["Ir-111-O.lmdb"]
    model = load_model(shipped)
    meta = model.metadata
    assert meta["recipe"] == "recipes/train_default_adsorption.py"
    assert meta["corpus_systems"] == ["Pt-111-O"] and meta["steps"] == 3 and meta["ema_decay"] == 0.9
    assert meta["target"] == "pooled"
    assert "Pt" in model.config.elements and "Ir" not in model.config.elements  # the held-out surface stayed out
