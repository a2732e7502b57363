"""OpenMMCalculator against OpenMM's own pipeline, and its forces against its energy."""

import numpy as np
import pytest

pytest.importorskip("openmm", reason="needs the protein extra (openmm)")
pytest.importorskip("rdkit", reason="needs the protein extra (rdkit)")

from digmat.protein import ForceFieldConfig, OpenMMCalculator, write_pdb  # noqa: E402
from digmat.protein.forcefield import topology_key  # noqa: E402

EV_PER_KJ_MOL = 1.0 / 96.485332  # 1 eV = 96.485332 kJ/mol (CODATA), written out independently of ASE


def _openmm_energy_kj(pdb_path, files, positions_angstrom):
    """Energy straight from OpenMM: PDBFile topology -> ForceField.createSystem -> Context (exact positions)."""
    import openmm
    from openmm import app, unit

    pdb = app.PDBFile(str(pdb_path))
    system = app.ForceField(*files).createSystem(pdb.topology, nonbondedMethod=app.NoCutoff)
    context = openmm.Context(system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName("Reference"))
    context.setPositions(positions_angstrom * 0.1)
    return context.getState(getEnergy=True).getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole)


@pytest.mark.parametrize("files", [
    ("amber14/protein.ff14SB.xml", "implicit/gbn2.xml"),
    ("amber14/protein.ff14SB.xml",),  # vacuum
])
def test_energy_equals_openmm_own(alanine_dipeptide, tmp_path, files):
    rng = np.random.default_rng(0)
    atoms = alanine_dipeptide.copy()
    atoms.positions += rng.normal(scale=0.05, size=atoms.positions.shape)
    write_pdb(tmp_path / "x.pdb", atoms)
    atoms.calc = OpenMMCalculator(ForceFieldConfig(forcefield=files))
    reference = _openmm_energy_kj(tmp_path / "x.pdb", files, atoms.positions) * EV_PER_KJ_MOL
    assert atoms.get_potential_energy() == pytest.approx(reference, rel=1e-5, abs=1e-5)


def test_forces_are_minus_the_energy_gradient(alanine_dipeptide):
    atoms = alanine_dipeptide.copy()
    atoms.positions += np.random.default_rng(1).normal(scale=0.03, size=atoms.positions.shape)
    atoms.calc = OpenMMCalculator()
    forces = atoms.get_forces()
    h = 2e-3  # Å: the CPU platform computes in single precision; O(h²) error is far smaller
    for i, c in [(0, 0), (8, 1), (12, 2), (19, 0)]:
        plus, minus = atoms.copy(), atoms.copy()
        plus.positions[i, c] += h
        minus.positions[i, c] -= h
        plus.calc = minus.calc = atoms.calc
        numeric = -(plus.get_potential_energy() - minus.get_potential_energy()) / (2 * h)
        assert forces[i, c] == pytest.approx(numeric, rel=3e-3, abs=1e-3)


def test_solvent_lowers_the_energy_of_the_polar_peptide(alanine_dipeptide):
    vacuum = alanine_dipeptide.copy()
    vacuum.calc = OpenMMCalculator(ForceFieldConfig(forcefield=("amber14/protein.ff14SB.xml",)))
    solvated = alanine_dipeptide.copy()
    solvated.calc = OpenMMCalculator()
    # GB solvation free energy of alanine dipeptide is about −0.5 eV (−12 kcal/mol); sign and size check.
    delta = solvated.get_potential_energy() - vacuum.get_potential_energy()
    assert -1.0 < delta < -0.2


def test_atoms_without_pdb_names_are_refused():
    from ase.build import molecule

    with pytest.raises(ValueError, match="carry no PDB naming"):
        topology_key(molecule("H2O"))
