"""Calculators by name (digmat.calculators)."""

from __future__ import annotations

import socket
import sys

import numpy as np
import pytest
from ase.build import add_adsorbate, fcc111
from ase.calculators.calculator import Calculator
from ase.calculators.emt import EMT

from digmat.calculators import (
    PotentialNotInstalledError,
    calculate_batch,
    get_calculator,
    list_calculators,
)


@pytest.fixture
def offline(monkeypatch):
    """No network: any socket connection attempt fails loudly."""

    def refuse(*args, **kwargs):
        raise AssertionError("network access attempted")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def _pt_o(site: str = "fcc") -> object:
    slab = fcc111("Pt", (2, 2, 3), vacuum=6.0)
    add_adsorbate(slab, "O", 1.3, site)
    return slab


def test_list_calculators():
    assert list_calculators() == ["chgnet", "emt", "sevenn"]


def test_emt_matches_ase_emt():
    atoms = _pt_o()
    calc = get_calculator("EMT")
    assert isinstance(calc, Calculator)
    mine = atoms.copy()
    mine.calc = calc
    ref = atoms.copy()
    ref.calc = EMT()
    assert mine.get_potential_energy() == pytest.approx(ref.get_potential_energy(), abs=1e-12)
    np.testing.assert_allclose(mine.get_forces(), ref.get_forces(), atol=1e-12)


@pytest.mark.parametrize("name, suggestion", [("emtt", "emt"), ("chgnett", "chgnet"), ("sevenet", "sevenn")])
def test_unknown_name_lists_available_and_close_match(name, suggestion):
    with pytest.raises(ValueError) as err:
        get_calculator(name)
    msg = str(err.value)
    assert "available: chgnet, emt, sevenn" in msg
    assert repr(suggestion) in msg


def test_missing_optional_package_gives_install_hint(monkeypatch):
    monkeypatch.setitem(sys.modules, "chgnet", None)  # makes `import chgnet` fail
    with pytest.raises(PotentialNotInstalledError) as err:
        get_calculator("chgnet")
    assert isinstance(err.value, ImportError)
    assert 'pip install "digmat[potentials]"' in str(err.value)


def test_calculate_batch_matches_single_points_and_copies():
    images = [_pt_o(site) for site in ("fcc", "hcp", "ontop")]
    out = calculate_batch(images, get_calculator("emt"), batch_size=2)
    assert len(out) == 3
    for image, result in zip(images, out, strict=True):
        assert image.calc is None  # inputs untouched
        assert result is not image
        ref = image.copy()
        ref.calc = EMT()
        assert result.get_potential_energy() == pytest.approx(ref.get_potential_energy(), abs=1e-12)
        np.testing.assert_allclose(result.get_forces(), ref.get_forces(), atol=1e-12)
    with pytest.raises(ValueError, match="batch_size"):
        calculate_batch(images, get_calculator("emt"), batch_size=0)


def test_chgnet_pt_o_finite_energy_offline(offline, one_thread):
    pytest.importorskip("chgnet")
    calc = get_calculator("chgnet")
    assert calc.model.version == "0.3.0"
    atoms = _pt_o()
    atoms.calc = calc
    energy = atoms.get_potential_energy()
    forces = atoms.get_forces()
    assert np.isfinite(energy)
    assert -8.0 < energy / len(atoms) < -4.0  # eV/atom: DFT-like total energy of a Pt slab
    assert forces.shape == (len(atoms), 3) and np.all(np.isfinite(forces))
    # Independent path: CHGNet's own pymatgen API, energy per atom.
    from pymatgen.io.ase import AseAtomsAdaptor

    direct = calc.model.predict_structure(AseAtomsAdaptor.get_structure(atoms), task="e")
    assert energy == pytest.approx(float(direct["e"]) * len(atoms), abs=1e-3)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["chgnet", "sevenn"])
def test_potential_batch_equals_loop(name, offline, one_thread):
    pytest.importorskip(name)
    calc = get_calculator(name)
    images = [_pt_o(site) for site in ("fcc", "hcp", "ontop")] + [fcc111("Pt", (2, 2, 2), vacuum=6.0)]
    batched = calculate_batch(images, calc, batch_size=3)
    for image, result in zip(images, batched, strict=True):
        ref = image.copy()
        ref.calc = calc
        assert result.get_potential_energy() == pytest.approx(ref.get_potential_energy(), abs=1e-4)
        np.testing.assert_allclose(result.get_forces(), ref.get_forces(), atol=1e-4)
