"""digmat adsorb --refine / --reweight with EMT on the shipped model (O on Pt(111))."""

from __future__ import annotations

import json
from pathlib import Path

import ase.io
import numpy as np
import pytest
from ase import units
from ase.calculators.emt import EMT

from digmat.cli.main import main

SLAB = Path(__file__).resolve().parents[2] / "data" / "Pt111_3x3x4.cif"


def test_refine_reports_boltzmann_populations_of_the_minima(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["adsorb", str(SLAB), "O", "-n", "16", "--refine", "emt", "--refine-per-site", "1",
                 "--out", str(out), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    refine = summary["refine"]
    assert refine["calculator"] == "emt" and refine["calls"] > 0
    assert len(refine["representatives"]) == len(summary["sites"])
    minima = [m for m in refine["minima"] if not m["saddle"]] or refine["minima"]
    kt = units.kB * 300.0
    f0 = min(m["free_energy"] for m in minima)
    weights = {id(m): m["multiplicity"] * np.exp(-(m["free_energy"] - f0) / kt) for m in minima}
    total = sum(weights.values())
    for site in summary["sites"]:
        expected = sum(weights[id(m)] for m in minima if m["site"] == site["label"]) / total
        assert site["refined_probability"] == pytest.approx(expected, abs=1e-5)
    assert sum(s["refined_probability"] for s in summary["sites"]) <= 1.0 + 1e-6
    assert json.loads((out / "sites.json").read_text())["refine"]["calls"] == refine["calls"]


def test_reweight_weights_recomputed_from_the_written_samples(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["adsorb", str(SLAB), "O", "-n", "8", "--reweight", "emt", "--out", str(out), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["reweight"]["calls"] == 8
    frames = ase.io.read(out / "configurations.extxyz", index=":")
    energies = []
    for atoms in frames:
        atoms.calc = EMT()
        energies.append(atoms.get_potential_energy())
    log_p = np.array([a.info["log_density"] for a in frames])
    log_w = -(np.array(energies) - min(energies)) / (units.kB * 300.0) - log_p
    w = np.exp(log_w - log_w.max())
    w /= w.sum()
    np.testing.assert_allclose([a.info["weight"] for a in frames], w, atol=1e-6)
    assert summary["reweight"]["effective_sample_size"] == pytest.approx(1.0 / np.sum(w**2), abs=0.01)
    for site in summary["sites"]:
        share = sum(wi for wi, a in zip(w, frames) if a.info["site"] == site["label"])
        assert site["reweighted_probability"] == pytest.approx(share, abs=1e-6)


def test_unknown_refine_calculator_is_refused_before_sampling(tmp_path, capsys):
    assert main(["adsorb", str(SLAB), "O", "-n", "4", "--refine", "nosuch", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "nosuch" in err and "Traceback" not in err
    assert not (tmp_path / "o").exists()
