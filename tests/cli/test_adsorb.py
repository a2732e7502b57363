"""``digmat adsorb``: files, database round trip and messages, with a small untrained model
(``tiny_model`` in ``tests/conftest.py``; its samples are not claimed to be meaningful: these
tests check files, keys and messages, not accuracy)."""

import json

import numpy as np
import pytest
from ase.build import fcc111
from ase.db import connect
from ase.io import read, write

from digmat.cli.main import main


def test_adsorb_cli_writes_outputs_and_database(tmp_path, tiny_model, capsys):
    slab_file = tmp_path / "slab.cif"
    write(slab_file, fcc111("Pt", (2, 2, 3), vacuum=8.0))  # untagged file: tags are inferred
    args = ["adsorb", str(slab_file), "OH", "-n", "12", "--steps", "3", "--model", str(tiny_model), "--out", str(tmp_path / "out"), "--json", "-T", "500"]
    assert main(args) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["samples"] == 12 and summary["temperature_K"] == 500 and summary["network_evaluations_per_sample"] == 5
    assert abs(sum(s["probability"] for s in summary["sites"]) - 1) < 1e-9
    configs = read(tmp_path / "out" / "configurations.extxyz", ":")
    assert len(configs) == 12 and {"site", "kind", "log_density"} <= set(configs[0].info)
    assert (tmp_path / "out" / "sites.png").stat().st_size > 1000
    assert not list((tmp_path / "out").glob(".*tmp"))
    # database in, database out
    db_path = tmp_path / "slabs.db"
    with connect(db_path) as db:
        db.write(fcc111("Pt", (2, 2, 3), vacuum=8.0))
    assert main(["adsorb", "--db", str(db_path), "O", "-n", "4", "--steps", "2", "--model", str(tiny_model), "--out", str(tmp_path / "dbout"), "--json"]) == 0
    capsys.readouterr()
    with connect(db_path) as db:
        assert db.count("digmat_sample=1") == 4


def _broken(kind):
    slab = fcc111("Pt", (2, 2, 3), vacuum=8.0)
    if kind == "overlap":
        slab.positions[1] = slab.positions[0] + [0.1, 0.0, 0.0]
    else:
        slab.positions[2, 0] = np.nan
    return slab


@pytest.mark.parametrize(
    ("make", "adsorbate", "message"),
    [
        (lambda p: p.write_text(""), "O", ""),
        (lambda p: write(p, fcc111("Pt", (2, 2, 3), vacuum=0.0, periodic=True)), "O", "vacuum"),
        (lambda p: write(p, fcc111("Pt", (2, 2, 3), vacuum=8.0)), "CH3COXYZ", "CH3CO"),
        (lambda p: write(p, fcc111("Cu", (2, 2, 3), vacuum=8.0)), "O", "not trained on Cu"),
        (lambda p: write(p, _broken("overlap")), "O", "overlapping atoms"),
        (lambda p: write(p, _broken("nan")), "O", "NaN"),
    ],
    ids=["empty-file", "no-vacuum", "unknown-adsorbate", "unsupported-element", "overlapping-atoms", "nan-position"],
)
def test_adsorb_cli_refuses_bad_input(tmp_path, tiny_model, capsys, make, adsorbate, message):
    path = tmp_path / "slab.xyz"
    make(path)
    code = main(["adsorb", str(path), adsorbate, "-n", "2", "--steps", "2", "--model", str(tiny_model), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and "error:" in err and message in err
    assert not (tmp_path / "out" / "sites.json").exists()


def test_missing_model_is_a_clear_error(tmp_path, capsys):
    write(tmp_path / "slab.cif", fcc111("Pt", (2, 2, 3), vacuum=8.0))
    assert main(["adsorb", str(tmp_path / "slab.cif"), "O", "--model", str(tmp_path / "nope.pt")]) == 2
    assert "no model" in capsys.readouterr().err


