"""Physics of a ligand in a fixed pocket: the complex as Atoms, GFN-FF as its ASE calculator.

The complex is the pocket's atoms (tag 0, fixed: OC20's convention for the slab's fixed atoms)
followed by the ligand's (tag 2, the adsorbate's tag), so the adsorption code's tag logic
reads it the same way.  GFN-FF (the ``gfnff`` wheel: Spicher & Grimme's force field, ALPB
implicit water) covers drug-like ligands and proteins with no parameters to download; the
total charge is the pocket's formal charge plus the ligand's.

Two things GFN-FF's ASE calculator decides from the *first* geometry it sees, measured on 1s3v
(2026-12-06) and pinned here:

* **Bonds.** GFN-FF perceives its bonds from distances. A first pose with a close
  ligand–pocket contact (a start 2 Å off the crystal pose) gave a topology with bonds between
  them and an energy 171 kcal/mol below the same pose scored with the right bonds.
  :func:`complex_atoms` therefore sets ``info["fragments"]`` (pocket 0, ligand 1): GFN-FF forms
  no bond between the two.
* **Charges.** Without a hint GFN-FF put the whole total charge (+2) on the pocket and left the
  cationic ligand of 1s3v neutral. ``info["ref_charges"]`` fixes each fragment's charge to its
  formal charge (pocket: its residues', ligand: RDKit's).

The calculator also keeps state between calls: scoring pose B after pose A gave energies
1–3 kcal/mol from B scored by a fresh calculator. Poses that are not on one continuous path
(different starts of a relaxation, different minima) are therefore each scored by a fresh
calculator (:func:`~digmat.ligand.mode_energies.weigh_modes` takes a factory).

Measured on this project's machine (one core, ``recipes/bench_ligand.py``): the first call on
a new complex sets up the topology (0.2 s at ~350 atoms, 1.7 s at ~800); afterwards an energy
with forces costs ~0.05 s at ~430 atoms and ~0.2 s at ~800 in ALPB water.
"""

from __future__ import annotations

import numpy as np
from ase import Atoms
from ase.constraints import FixAtoms

from digmat.extras import require_extra
from digmat.ligand.pocket import Pocket

__all__ = ["bond_anomalies", "complex_atoms", "energy_anomalies", "gfnff_calculator", "ligand_slice", "relax_ligand"]

#: Å: a relaxed ligand whose bond length differs this much from the median of its run's relaxations
#: has changed its bonding (:func:`bond_anomalies`).
MAX_BOND_CHANGE = 0.1
#: kcal/mol: a relaxed energy this far below the median of its run's relaxations is a calculator failure
#: (:func:`energy_anomalies`).
MAX_ENERGY_DROP = 100.0


def complex_atoms(pocket: Pocket, ligand: Atoms) -> Atoms:
    """Pocket (tag 0, fixed) + ligand (tag 2) as one :class:`ase.Atoms`; ``info["charge"]`` the total (e).

    ``info["fragments"]`` (0 pocket, 1 ligand) and ``info["ref_charges"]`` (each fragment's formal
    charge, carried by its first atom; only the per-fragment sums count) are GFN-FF's hints: no
    bonds between pocket and ligand, and each keeps its own charge (module docstring).
    Neither input is modified.
    """
    out = pocket.atoms.copy() + ligand.copy()
    n = len(pocket.atoms)
    out.set_tags(np.r_[np.zeros(n, int), np.full(len(ligand), 2)])
    out.set_constraint(FixAtoms(indices=np.arange(n)))
    charge = int(ligand.info.get("charge", 0))
    out.info["charge"] = int(pocket.charge) + charge
    out.info["pocket_atoms"] = n
    out.info["fragments"] = np.r_[np.zeros(n, int), np.ones(len(ligand), int)]
    ref = np.zeros(len(out))
    ref[0], ref[n] = float(pocket.charge), float(charge)
    out.info["ref_charges"] = ref
    return out


def ligand_slice(atoms: Atoms) -> slice:
    """The ligand's atoms in a :func:`complex_atoms` structure."""
    return slice(int(atoms.info["pocket_atoms"]), len(atoms))


def gfnff_calculator(charge: int = 0, *, solvent: str = "h2o"):
    """A GFN-FF ASE calculator (eV, eV/Å) with ALPB implicit ``solvent`` ("" for vacuum)."""
    require_extra("ligand", "gfnff")
    from gfnff import GFNFF

    return GFNFF(charge=int(charge), solvent=solvent)


def relax_ligand(atoms: Atoms, calc, *, fmax: float = 0.05, steps: int = 1000, free=None) -> tuple[Atoms, dict]:
    """Relax the ligand in the fixed pocket (L-BFGS with a line search over the ligand's coordinates).

    Returns a copy and ``{energy (eV), steps (iterations), evaluations (calculator calls),
    converged (every moving atom's force ≤ fmax)}``.

    scipy's L-BFGS-B, not ASE's FIRE or LBFGS. Measured 2026-12-06 on five starts in 1s3v's
    pocket (GFN-FF, ALPB water, fmax 0.02 eV/Å): FIRE needed 356–1,000 steps (one start not
    converged at 1,000) and stopped 0.9–18 kcal/mol higher; ASE's LBFGS (no line search) reached
    the same minima as ASE's BFGS in 211–418 steps but flies off uphill on a Lennard-Jones atom
    over a square (``tests/ligand/test_mode_energies.py``); L-BFGS-B reached the same or lower
    minima in 214–548 evaluations and converges on the toy. Only the ligand's coordinates (and
    ``free``'s) are optimised, so the cost per step does not grow with the pocket.

    Parameters
    ----------
    atoms : ase.Atoms
        A :func:`complex_atoms` structure (not modified).
    calc : ase.calculators.calculator.Calculator
        e.g. :func:`gfnff_calculator` with the complex's charge.
    fmax : float
        eV/Å on the ligand's atoms.
    steps : int
        Most iterations.
    free : array_like of int, optional
        Pocket atoms relaxed with the ligand (e.g. :func:`~digmat.ligand.pocket.side_chain_atoms`);
        default none: the pocket stays fixed.
    """
    from scipy.optimize import minimize

    work = atoms.copy()
    work.calc = calc
    ligand = ligand_slice(work)
    moving = np.arange(ligand.start, ligand.stop)
    if free is not None and len(free):
        free = np.unique(np.asarray(free, int))
        if free.min() < 0 or free.max() >= ligand.start:
            raise ValueError(f"free atoms must be pocket atoms (indices 0..{ligand.start - 1})")
        moving = np.concatenate([free, moving])
    evaluations = 0

    def energy_and_gradient(x):
        nonlocal evaluations
        positions = work.get_positions()
        positions[moving] = x.reshape(-1, 3)
        work.set_positions(positions, apply_constraint=False)
        evaluations += 1
        # the pocket carries FixAtoms: its free atoms' forces are read unconstrained
        return work.get_potential_energy(), -work.get_forces(apply_constraint=False)[moving].ravel()

    # the per-component gradient test implies |f_atom| <= fmax; ftol 0 leaves stopping to it
    found = minimize(energy_and_gradient, work.positions[moving].ravel(), jac=True, method="L-BFGS-B",
                     options={"maxiter": int(steps), "gtol": fmax / np.sqrt(3.0), "ftol": 0.0, "maxcor": 20})
    energy, _ = energy_and_gradient(found.x)
    worst = float(np.linalg.norm(work.get_forces(apply_constraint=False)[moving], axis=1).max())
    return work, {"energy": float(energy), "steps": int(found.nit), "evaluations": evaluations,
                  "converged": worst <= fmax}


def bond_anomalies(positions, bonds, limit: float = MAX_BOND_CHANGE) -> np.ndarray:
    """Which relaxed ligand poses changed their bonding: a bond length off the median of all of them.

    The median over the relaxations of one run is the force field's own bond length (the input
    geometry's can differ systematically, e.g. an RDKit C–H against GFN-FF's). Measured on 1uou
    and 1s3v in GFN-FF (2026-12-07, 113 relaxations): normal minima stay within 0.03 Å of it
    (90 % quantile); five relaxations had a C–H stretched 0.12–0.28 Å — one of them 17.7 kcal/mol
    below every other minimum, an artefact that would take all the population. Its cause: the
    start (a Vina pose; Vina ignores non-polar hydrogens) had two of the ligand's H atoms 0.90 Å
    apart, GFN-FF perceived a bond between them from that first geometry, and the relaxation
    kept it (H–H 1.10 Å, C–H 1.37 Å). Weighed like a minimum it is wrong, as AdsorbML's anomaly
    tests drop an adsorbate that dissociated.

    Parameters
    ----------
    positions : array_like
        (S, N, 3) Å relaxed ligand poses (one run: the same ligand, the same force field).
    bonds : array_like of int
        (B, 2) ligand atom index pairs (e.g. the RDKit molecule's bonds).
    limit : float
        Å.

    Returns
    -------
    numpy.ndarray
        (S,) bool. With fewer than three poses the median says little; nothing is flagged.
    """
    x = np.asarray(positions, float)
    bonds = np.asarray(bonds, int).reshape(-1, 2)
    if x.ndim != 3 or len(x) < 3 or not len(bonds):
        return np.zeros(len(x), bool)
    length = np.linalg.norm(x[:, bonds[:, 0]] - x[:, bonds[:, 1]], axis=-1)
    return np.abs(length - np.median(length, axis=0)).max(axis=1) > limit


def energy_anomalies(energies, limit: float = MAX_ENERGY_DROP) -> np.ndarray:
    """Which relaxations report an energy no minimum of this ligand in this pocket can have.

    Measured on 1uou (2026-12-07, 120 relaxations in one pocket, GFN-FF): the real minima lie
    within 25 kcal/mol below the median; one start returned −31,160 kcal/mol below every other after
    36 calls, its geometry unchanged (moved 0.01 Å, bonds intact): the calculator failed, not the
    physics. ``energies`` (S,) kcal/mol; returns (S,) bool, nothing flagged below three energies.
    """
    e = np.asarray(energies, float).reshape(-1)
    if len(e) < 3:
        return np.zeros(len(e), bool)
    return e < np.nanmedian(e) - limit
