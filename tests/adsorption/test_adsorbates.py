"""get_adsorbate: OC20 names, ASE G2 names, elements, files."""

from __future__ import annotations

import json
from importlib import resources

import numpy as np
import pytest
from ase.build import molecule
from ase.io import write

from digmat.adsorption import get_adsorbate, list_adsorbates, oc20_adsorbate_table


def _neighbours(atoms, i, cutoff=1.35):
    d = np.linalg.norm(atoms.positions - atoms.positions[i], axis=1)
    return sorted(atoms[j].symbol for j in np.flatnonzero((d > 0) & (d < cutoff)))


def test_oc20_table_is_complete_and_licensed():
    table = oc20_adsorbate_table()
    assert len(table) == 86 and [e["id"] for e in table] == list(range(86))
    names = [e["name"] for e in table]
    assert len(set(names)) == 86 and "*COCH3" in names and "*OH" in names
    for e in table:
        assert len(e["symbols"]) == len(e["positions"])
        assert all(0 <= i < len(e["symbols"]) for i in e["binding_indices"])
        assert all(e["name"][e["name"].index("*") + 1 :])  # every name marks a binding atom
    meta = json.loads(resources.files("digmat.data").joinpath("oc20_adsorbates.json").read_text())
    assert meta["license"] == "MIT" and "Meta Platforms" in meta["license_text"]
    assert "fairchem-data-oc" in meta["source"] and len(meta["source_sha256"]) == 64
    table[0]["symbols"].append("X")  # a copy: the packaged table is unaffected
    assert oc20_adsorbate_table()[0]["symbols"] == ["O"]


@pytest.mark.parametrize("name", ["CH3CO", "*CH3CO"])
def test_ch3co_binds_through_carbonyl_carbon(name):
    ads = get_adsorbate(name)
    assert ads.get_chemical_formula(mode="hill") == "C2H3O"
    assert ads.info["source"] == "g2" and ads.info["oc20_match"] == "*COCH3"
    (b,) = ads.info["binding_indices"]
    assert ads[b].symbol == "C" and _neighbours(ads, b, 1.6) == ["C", "O"]  # acetyl C
    ref = molecule("CH3CO")  # geometry is ASE's own
    np.testing.assert_allclose(ads.positions, ref.positions)


@pytest.mark.parametrize(
    "name, formula, symbol, source",
    [
        ("OH", "HO", "O", "oc20"),
        ("*OH", "HO", "O", "oc20"),
        ("CO", "CO", "C", "oc20"),
        ("*CO", "CO", "C", "oc20"),
        ("H", "H", "H", "oc20"),
        ("O", "O", "O", "oc20"),
        ("N", "N", "N", "oc20"),
        ("C", "C", "C", "oc20"),
        ("H2O", "H2O", "O", "g2"),
        ("Cl", "Cl", "Cl", "g2"),
        ("Ag", "Ag", "Ag", "element"),
    ],
)
def test_names_resolve(name, formula, symbol, source):
    ads = get_adsorbate(name)
    assert ads.get_chemical_formula(mode="hill") == formula
    assert [ads[i].symbol for i in ads.info["binding_indices"]] == [symbol]
    assert ads.info["source"] == source
    assert (ads.get_tags() == 2).all() and not ads.pbc.any()


def test_oc20_multidentate_and_starless_names():
    a = get_adsorbate("*CH2*O")
    b = get_adsorbate("CH2O")  # starless form of *CH2*O (unique)
    assert a.info["binding_indices"] == b.info["binding_indices"] == [0, 3]
    assert sorted(a[i].symbol for i in a.info["binding_indices"]) == ["C", "O"]
    assert a.info["oc20_id"] == 10 and a.info["smiles"] == "*CH2*O"
    c = get_adsorbate("CH2*CO")
    assert c[c.info["binding_indices"][0]].symbol == "C"


def test_unknown_name_suggests_close_matches():
    with pytest.raises(ValueError) as err:
        get_adsorbate("CH3C0")
    assert "CH3CO" in str(err.value) and "Close matches" in str(err.value)
    with pytest.raises(ValueError, match=r"\*OOH"):
        get_adsorbate("*OOHH")
    with pytest.raises(ValueError, match="unknown adsorbate"):
        get_adsorbate("Xyzzy")


def test_file_and_binding_override(tmp_path):
    water = molecule("H2O")  # O first
    water.rotate(90, "x")
    write(tmp_path / "w.xyz", water)
    ads = get_adsorbate(tmp_path / "w.xyz")
    assert ads.info["source"] == "file" and ads.info["binding_indices"] == [0]
    np.testing.assert_allclose(ads.positions, water.positions, atol=1e-6)
    h_bound = get_adsorbate(str(tmp_path / "w.xyz"), binding_indices=[-1])
    assert h_bound.info["binding_indices"] == [2]
    stored = water.copy()
    stored.info["binding_indices"] = [1]
    write(tmp_path / "w2.extxyz", stored)
    assert get_adsorbate(tmp_path / "w2.extxyz").info["binding_indices"] == [1]
    with pytest.raises(ValueError, match="out of range"):
        get_adsorbate("CO", binding_indices=[5])
    (tmp_path / "empty.xyz").write_text("")
    with pytest.raises(ValueError, match="empty"):
        get_adsorbate(tmp_path / "empty.xyz")


def test_list_adsorbates():
    oc20 = list_adsorbates("oc20")
    g2 = list_adsorbates("g2")
    assert len(oc20) == 86 and "CH3CO" in g2
    assert set(list_adsorbates()) == set(oc20) | set(g2)
    with pytest.raises(ValueError):
        list_adsorbates("pubchem")
