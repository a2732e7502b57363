"""The shipped peptide model: card, loader, and alanine dipeptide against the committed reference."""

from pathlib import Path

import numpy as np
import pytest

from digmat.checkpoint import SHIPPED_DIR

pytest.importorskip("openmm", reason="needs the protein extra (openmm)")
pytest.importorskip("rdkit", reason="needs the protein extra (rdkit)")

REFERENCE = Path(__file__).resolve().parents[2] / "data" / "peptides"


@pytest.fixture(scope="module")
def model():
    from digmat import load_model

    return load_model("peptide")


def test_ships_with_a_model_card(model):
    card = (SHIPPED_DIR / "peptide.md").read_text()
    assert model.kind == "peptide" and not model.training
    for needed in ("recipes/train_peptide.py", "recipes/reference_peptides.py", "Held-out", "kcal/mol"):
        assert needed in card
    assert "A" in model.config.training_sequences


def test_alanine_dipeptide_free_energies_match_the_metadynamics_reference(model):
    """Every basin's ΔF within 0.5 kcal/mol of the reference (independent physics: ff14SB + GBn2)."""
    if not (REFERENCE / "A").is_dir():
        pytest.skip("data/peptides/A (the committed reference) is absent")
    from digmat.protein import basin_table
    from digmat.tasks.peptide_data import load_reference_runs
    from digmat.tasks.peptide_sampling import sample_peptides

    runs = load_reference_runs(REFERENCE, "A")
    ref = basin_table(np.concatenate([r.phi_psi[:, 0] for r in runs]), 300.0,
                      weights=np.concatenate([r.weights() / len(runs) for r in runs]))
    ensemble = sample_peptides(model, "A", 500, seed=0)
    (ours,) = ensemble.basin_tables()
    error = np.abs(ours.relative_free_energy() - ref.relative_free_energy())
    assert np.all(error < 0.5), error
    assert ensemble.clash_rate() == 0 and ensemble.meta["raw_clash_rate"] < 0.02


def test_a_held_out_amino_acid_is_within_one_kcal_per_mol(model):
    """Asparagine was never trained on: every basin's ΔF within 1.0 kcal/mol of its reference."""
    if not (REFERENCE / "N").is_dir():
        pytest.skip("data/peptides/N (the committed reference) is absent")
    from digmat.protein import basin_table
    from digmat.tasks.peptide_data import load_reference_runs
    from digmat.tasks.peptide_sampling import sample_peptides

    assert "N" not in "".join(model.config.training_sequences)
    runs = load_reference_runs(REFERENCE, "N")
    ref = basin_table(np.concatenate([r.phi_psi[:, 0] for r in runs]), 300.0,
                      weights=np.concatenate([r.weights() / len(runs) for r in runs]))
    with pytest.warns(UserWarning, match="not in the model's training data"):
        ensemble = sample_peptides(model, "N", 400, seed=0)
    (ours,) = ensemble.basin_tables()
    error = np.abs(ours.relative_free_energy() - ref.relative_free_energy())
    assert np.all(error < 1.0), error
    assert ensemble.clash_rate() == 0
