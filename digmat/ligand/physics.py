"""Physics of a ligand in a fixed pocket: the complex as Atoms, GFN-FF as its ASE calculator.

The complex is the pocket's atoms (tag 0, fixed: OC20's convention for the slab's fixed atoms)
followed by the ligand's (tag 2, the adsorbate's tag), so the adsorption code's tag logic
reads it the same way.  GFN-FF (the ``gfnff`` wheel: Spicher & Grimme's force field, ALPB
implicit water) covers drug-like ligands and proteins with no parameters to download; the
total charge is the pocket's formal charge plus the ligand's.

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

__all__ = ["complex_atoms", "gfnff_calculator", "ligand_slice", "relax_ligand"]


def complex_atoms(pocket: Pocket, ligand: Atoms) -> Atoms:
    """Pocket (tag 0, fixed) + ligand (tag 2) as one :class:`ase.Atoms`; ``info["charge"]`` the total (e).

    Neither input is modified.
    """
    out = pocket.atoms.copy() + ligand.copy()
    n = len(pocket.atoms)
    out.set_tags(np.r_[np.zeros(n, int), np.full(len(ligand), 2)])
    out.set_constraint(FixAtoms(indices=np.arange(n)))
    out.info["charge"] = int(pocket.charge) + int(ligand.info.get("charge", 0))
    out.info["pocket_atoms"] = n
    return out


def ligand_slice(atoms: Atoms) -> slice:
    """The ligand's atoms in a :func:`complex_atoms` structure."""
    return slice(int(atoms.info["pocket_atoms"]), len(atoms))


def gfnff_calculator(charge: int = 0, *, solvent: str = "h2o"):
    """A GFN-FF ASE calculator (eV, eV/Å) with ALPB implicit ``solvent`` ("" for vacuum)."""
    require_extra("ligand", "gfnff")
    from gfnff import GFNFF

    return GFNFF(charge=int(charge), solvent=solvent)


def relax_ligand(atoms: Atoms, calc, *, fmax: float = 0.05, steps: int = 300) -> tuple[Atoms, dict]:
    """Relax the ligand in the fixed pocket (FIRE); returns a copy and ``{energy, steps, converged}``.

    Parameters
    ----------
    atoms : ase.Atoms
        A :func:`complex_atoms` structure (not modified).
    calc : ase.calculators.calculator.Calculator
        e.g. :func:`gfnff_calculator` with the complex's charge.
    fmax : float
        eV/Å on the ligand's atoms.
    steps : int
        Most optimiser steps.
    """
    from ase.optimize import FIRE

    work = atoms.copy()
    work.calc = calc
    opt = FIRE(work, logfile=None)
    converged = bool(opt.run(fmax=fmax, steps=steps))
    return work, {"energy": float(work.get_potential_energy()), "steps": int(opt.nsteps), "converged": converged}
