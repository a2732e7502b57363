"""Relaxation at fixed torsions: lower energy, torsions kept, rigid-body modes dropped from the Hessian."""

import numpy as np
import pytest

pytest.importorskip("openmm", reason="needs the protein extra (openmm)")
pytest.importorskip("rdkit", reason="needs the protein extra (rdkit)")

from digmat.protein import OpenMMCalculator, set_dihedrals  # noqa: E402
from digmat.protein.relax import torsion_restrained_energies  # noqa: E402
from digmat.protein.torsions import dihedral_angles, state_torsions  # noqa: E402


def test_relaxation_lowers_the_energy_and_keeps_the_torsions(alanine_dipeptide):
    ds = state_torsions(alanine_dipeptide)
    conformations = [set_dihedrals(alanine_dipeptide, ds, target) for target in ([60, 40], [-65, -40], [-150, 155])]
    energies, relaxed, half_log_det = torsion_restrained_energies(conformations, ds, harmonic=True)
    quads = np.array([d.indices for d in ds])
    for atoms, e, out in zip(conformations, energies, relaxed):
        rigid = atoms.copy()
        rigid.calc = OpenMMCalculator()
        assert e < rigid.get_potential_energy()
        before, after = (np.degrees(dihedral_angles(a.positions, quads)) for a in (atoms, out))
        assert np.max(np.abs((after - before + 180) % 360 - 180)) < 2.0
        plain = out.copy()
        plain.calc = OpenMMCalculator()
        assert plain.get_potential_energy() == pytest.approx(e, abs=1e-4)  # restraint energy excluded
    assert np.all(np.isfinite(half_log_det)) and np.ptp(half_log_det) < 5.0


def test_other_peptides_are_refused(alanine_dipeptide):
    from digmat.protein import build_peptide

    ds = state_torsions(alanine_dipeptide)
    with pytest.raises(ValueError, match="same peptide"):
        torsion_restrained_energies([alanine_dipeptide, build_peptide("G", minimize=False)], ds)
