"""Every system adapter implements the one SystemAdapter protocol, and round-trips Atoms."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from ase.build import bulk, fcc111

from digmat.adsorption import convert_ase_tags, get_adsorbate, place_adsorbate
from digmat.core import NoiseSchedule
from digmat.systems import AdsorbateSystem, CrystalSystem, SystemAdapter


def _adsorbate():
    slab = convert_ase_tags(fcc111("Pt", (2, 2, 3), vacuum=8.0))
    atoms = place_adsorbate(slab, get_adsorbate("OH"), np.array([1.0, 0.7, 0.0]))
    return AdsorbateSystem(slab, get_adsorbate("OH")), atoms


def _crystal():
    atoms = bulk("C", "diamond", a=3.57)
    return CrystalSystem.for_atoms(atoms), atoms


def _peptide():
    pytest.importorskip("openmm", reason="needs the protein extra (openmm)")
    pytest.importorskip("rdkit", reason="needs the protein extra (rdkit)")
    from digmat.systems import PeptideSystem

    system = PeptideSystem.from_sequence("V")
    return system, system.to_atoms(torch.tensor([[4.0, 2.5, 1.0]], dtype=torch.float64))[0]


@pytest.mark.parametrize("make", [_adsorbate, _crystal, _peptide], ids=["adsorbate", "crystal", "peptide"])
def test_adapter_implements_the_protocol(make):
    system, atoms = make()
    assert isinstance(system, SystemAdapter)
    before = atoms.positions.copy()
    x = system.to_state([atoms, atoms])
    assert x.shape == (2, system.dim) and system.space.shape == (system.dim,)
    np.testing.assert_array_equal(atoms.positions, before)  # the input is not modified
    back = system.to_state(system.to_atoms(x))
    torch.testing.assert_close(system.space.difference(back, x), torch.zeros_like(x), atol=1e-8, rtol=0)
    diffusion = system.diffusion(NoiseSchedule())
    assert diffusion.space is system.space
    xt, _ = diffusion.perturb(x, torch.full((2,), 0.5, dtype=x.dtype), generator=torch.Generator().manual_seed(0))
    assert xt.shape == x.shape and not torch.equal(xt, x)
    json.dumps(system.conditioning())
    assert system.conditioning()["kind"] in ("adsorption", "crystal", "peptide")


def test_something_else_is_not_an_adapter():
    assert not isinstance(object(), SystemAdapter)


def test_ligand_adapter_implements_the_protocol_with_a_rigid_state(pocket_1uou):
    """The ligand's state is a RigidState: flat entries on ``space`` plus the orientation."""
    from ase import Atoms

    from digmat.core import RigidDiffusion, RigidState
    from digmat.ligand.system import LigandSystem

    pocket, mol = pocket_1uou
    x0 = mol.GetConformer().GetPositions()
    system = LigandSystem(mol, pocket, x0.mean(axis=0))
    assert isinstance(system, SystemAdapter)
    atoms = Atoms([a.GetSymbol() for a in mol.GetAtoms()], positions=x0)
    before = atoms.positions.copy()
    state = system.to_state([atoms, atoms])
    assert isinstance(state, RigidState) and state.x.shape == (2, system.dim) and state.R.shape == (2, 3, 3)
    np.testing.assert_array_equal(atoms.positions, before)
    back = system.to_state(system.to_atoms(state))
    torch.testing.assert_close(system.space.difference(back.x, state.x), torch.zeros_like(state.x), atol=1e-6, rtol=0)
    torch.testing.assert_close(back.R, state.R, atol=1e-6, rtol=0)
    diffusion = system.diffusion(NoiseSchedule())
    assert isinstance(diffusion, RigidDiffusion) and diffusion.flat.space is system.space
    noised, _, _ = diffusion.perturb(state, torch.full((2,), 0.3, dtype=torch.float64),
                                     generator=torch.Generator().manual_seed(0))
    assert not torch.equal(noised.x, state.x) and not torch.equal(noised.R, state.R)
    assert system.conditioning()["kind"] == "ligand"
    json.dumps(system.conditioning())
    with pytest.raises(ValueError, match="not this ligand"):
        system.to_state(Atoms("H" * len(atoms), positions=x0))
