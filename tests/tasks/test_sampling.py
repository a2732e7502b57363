"""The sampling pipeline's plumbing and its site statistics.

Site assignment is checked against ASE's own site positions; the CLI's outputs, database
round trip and error messages with a small randomly initialised model (its samples are not
claimed to be meaningful: this checks files, keys and messages, not accuracy).
"""

import json

import numpy as np
import pytest
import torch
from ase.build import add_adsorbate, fcc111
from ase.db import connect
from ase.io import read, write

from digmat.adsorption import convert_ase_tags
from digmat.tasks.sampling import summarise_sites
from digmat.checkpoint import save_checkpoint
from digmat.cli.main import main
from digmat.models import AdsorptionModelConfig, AdsorptionScoreModel
from digmat.nn import GraphormerConfig


def placed(site, offset=(0.0, 0.0)):
    s = fcc111("Pt", (2, 2, 3), vacuum=8.0)
    add_adsorbate(s, "O", 1.2, site, offset=offset)
    return convert_ase_tags(s)


def test_site_statistics_match_ase_placements():
    slab = convert_ase_tags(fcc111("Pt", (2, 2, 3), vacuum=8.0))
    configs = [placed("fcc", (i % 2, i // 2 % 2)) for i in range(6)] + [placed("hcp", (1, 0))] * 3 + [placed("ontop", (0, 1))]
    sites, labels = summarise_sites(slab, configs, len(slab), bootstrap=500)
    kinds = {s.kind: s for s in sites}
    assert set(kinds) == {"hollow-fcc", "hollow-hcp", "ontop"}
    assert kinds["hollow-fcc"].probability == pytest.approx(0.6) and kinds["hollow-hcp"].probability == pytest.approx(0.3)
    lo, hi = kinds["hollow-fcc"].interval
    assert lo < 0.6 < hi
    assert labels.tolist()[:6] == [labels[0]] * 6  # all fcc copies (lattice/symmetry images) merge
    assert kinds["ontop"].binding_symbols == ["Pt"] and len(kinds["hollow-fcc"].binding_symbols) == 3


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    torch.manual_seed(0)
    net = GraphormerConfig(num_layers=1, embed_dim=16, num_heads=2, ffn_dim=32, num_rbf=8, cutoff=4.0, num_tags=4, num_conditions=1, scalar_out=0)
    config = AdsorptionModelConfig(network=net, elements=("Pt", "O", "H"))
    path = tmp_path_factory.mktemp("model") / "tiny.pt"
    save_checkpoint(path, config=config.to_dict(), state_dict=AdsorptionScoreModel(config).state_dict(), metadata={"note": "untrained, for I/O tests"})
    return path


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


def test_thermally_displaced_hollow_is_not_called_ontop():
    """0.27 Å off the fcc centre towards one Pt the distance window says 'ontop'; the nearest-site rule keeps fcc."""
    slab = convert_ase_tags(fcc111("Pt", (2, 2, 3), vacuum=8.0))
    config = placed("fcc")
    atom = np.argmin(np.linalg.norm(config.positions[: len(slab), :2] - config.positions[-1, :2], axis=1) + 100 * (config.get_tags()[: len(slab)] != 1))
    towards = config.positions[atom, :2] - config.positions[-1, :2]
    config.positions[-1, :2] += 0.27 * towards / np.linalg.norm(towards)
    sites, _ = summarise_sites(slab, [config], len(slab), bootstrap=10)
    assert sites[0].kind == "hollow-fcc"
