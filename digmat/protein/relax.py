"""Relax bonds and angles at fixed torsions: the energy of a torsion state.

A torsion-space sample has the template's bond lengths and angles, which are strained in
other conformations (e.g. the N–CA–C angle opens in αL).  Its energy at that rigid geometry
is far above what the force field gives the same torsions, so importance weights against the
rigid energy are wrong (measured on alanine dipeptide: αL/C7ax suppressed by 2.8 kcal/mol).
:func:`torsion_restrained_energies` instead minimises every conformation in the force field
with its state torsions held by a stiff harmonic restraint, and returns the force-field
energy at that minimum — the adiabatic energy of the torsion state (the torsions' potential
of mean force up to the fast modes' vibrational entropy, which this neglects).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from ase import Atoms

from digmat.protein.extra import require_protein_extra
from digmat.protein.forcefield import KJ_PER_MOL, ForceFieldConfig, create_system, topology_key
from digmat.protein.torsions import Dihedral

__all__ = ["torsion_restrained_energies"]

RESTRAINT_GROUP = 31


def torsion_restrained_energies(
    conformations: Sequence[Atoms],
    dihedrals: Sequence[Dihedral],
    *,
    config: ForceFieldConfig = ForceFieldConfig(),
    stiffness: float = 2000.0,
    tolerance: float = 5.0,
    max_iterations: int = 500,
    threads: int | None = 1,
    harmonic: bool = False,
) -> tuple[np.ndarray, list[Atoms]] | tuple[np.ndarray, list[Atoms], np.ndarray]:
    """Force-field energies of conformations relaxed at their own torsions.

    Parameters
    ----------
    conformations : sequence of ase.Atoms
        Conformations of one peptide (not modified).
    dihedrals : sequence of Dihedral
        The torsions held fixed (each at its value in the conformation).
    config : ForceFieldConfig
    stiffness : float
        Restraint constant, kJ/mol/rad² (2000: a 1° deviation costs 0.3 kJ/mol).
    tolerance : float
        L-BFGS convergence, kJ/mol/nm.
    max_iterations : int
    threads : int or None
        OpenMM CPU threads.
    harmonic : bool
        Also return ½ ln det′ H of the restrained minimum's Cartesian Hessian (central
        differences of the forces, step 1e-4 nm; the six rigid-body zero modes dropped), in
        kJ/mol/nm² units.  With a stiff restraint det H = k^n det H⊥ det G, so
        −E/kT − ½ ln det′ H is the log torsion marginal in the harmonic approximation,
        including the metric factor of the torsion coordinates (up to a constant).

    Returns
    -------
    energies : ndarray, shape (n,)
        eV, force field only (the restraint's energy excluded).
    relaxed : list of ase.Atoms
        The minimised conformations.
    half_log_det : ndarray, shape (n,)
        Only with ``harmonic``.
    """
    require_protein_extra("openmm")
    import openmm
    from openmm import unit

    from digmat.protein.torsions import dihedral_angles

    if not conformations:
        return np.zeros(0), []
    key = topology_key(conformations[0])
    system = create_system(conformations[0], config)
    restraint = openmm.CustomTorsionForce(
        "0.5*k_restraint*d^2; d = min(dt, 2*pi - dt); dt = abs(theta - theta0); pi = 3.141592653589793")
    restraint.addGlobalParameter("k_restraint", stiffness)
    restraint.addPerTorsionParameter("theta0")
    for d in dihedrals:
        restraint.addTorsion(*d.indices, [0.0])
    restraint.setForceGroup(RESTRAINT_GROUP)
    system.addForce(restraint)
    platform = openmm.Platform.getPlatformByName("CPU")
    properties = {} if threads is None else {"Threads": str(threads)}
    context = openmm.Context(system, openmm.VerletIntegrator(1.0), platform, properties)
    quads = np.array([d.indices for d in dihedrals])
    groups = {g for g in range(32) if g != RESTRAINT_GROUP}
    energies, relaxed, half_log_det = [], [], []
    for atoms in conformations:
        if topology_key(atoms) != key:
            raise ValueError("all conformations must be the same peptide")
        targets = dihedral_angles(atoms.positions, quads)
        for k, (d, value) in enumerate(zip(dihedrals, targets)):
            restraint.setTorsionParameters(k, *d.indices, [float(value)])
        restraint.updateParametersInContext(context)
        context.setPositions(atoms.positions * 0.1)
        openmm.LocalEnergyMinimizer.minimize(context, tolerance, max_iterations)
        state = context.getState(getEnergy=True, getPositions=True, groups=groups)
        energies.append(state.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole) * KJ_PER_MOL)
        out = atoms.copy()
        out.positions = state.getPositions(asNumpy=True).value_in_unit(unit.angstrom)
        relaxed.append(out)
        if harmonic:
            half_log_det.append(0.5 * _log_det_hessian(context, out.positions * 0.1))
    if harmonic:
        return np.array(energies), relaxed, np.array(half_log_det)
    return np.array(energies), relaxed


def _log_det_hessian(context, positions_nm: np.ndarray, step: float = 1e-4) -> float:
    """ln det′ of the Cartesian Hessian (kJ/mol/nm²) at ``positions_nm``, six smallest |eigenvalues| dropped."""
    from openmm import unit

    n = len(positions_nm)
    hessian = np.zeros((3 * n, 3 * n))
    for k in range(3 * n):
        forces = []
        for sign in (1.0, -1.0):
            pos = positions_nm.copy()
            pos[k // 3, k % 3] += sign * step
            context.setPositions(pos)
            f = context.getState(getForces=True).getForces(asNumpy=True)
            forces.append(f.value_in_unit(unit.kilojoule_per_mole / unit.nanometer).ravel())
        hessian[k] = -(forces[0] - forces[1]) / (2 * step)
    hessian = 0.5 * (hessian + hessian.T)
    eig = np.sort(np.abs(np.linalg.eigvalsh(hessian)))[6:]
    return float(np.sum(np.log(eig)))
