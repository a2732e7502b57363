"""Force fields for peptides: OpenMM systems and an ASE calculator.

The physics of the protein module is an OpenMM force field with implicit solvent, by
default Amber ff14SB with the GBn2 generalized-Born model (both ship in the ``openmm``
wheel), no cutoff, at the temperature of the caller's choosing.  Peptides travel as
:class:`ase.Atoms` whose per-atom arrays carry their PDB naming (the arrays ASE's own PDB
reader fills):

``atomtypes``       atom names (``"N"``, ``"CA"``, ``"HB1"`` ...)
``residuenames``    residue names (``"ACE"``, ``"ALA"``, ``"NME"`` ...)
``residuenumbers``  residue numbers (int)

From these, :func:`peptide_topology` rebuilds the OpenMM topology (bonds from OpenMM's
residue templates), so Atoms written and read back by ASE keep working.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from ase import Atoms, units
from ase.calculators.calculator import Calculator, all_changes

from digmat.protein.extra import require_protein_extra

__all__ = [
    "ForceFieldConfig",
    "KJ_PER_MOL",
    "OpenMMCalculator",
    "create_system",
    "load_forcefield",
    "peptide_topology",
    "pdb_text",
    "topology_key",
]

KJ_PER_MOL = units.kJ / units.mol
"""One kJ/mol in eV (ASE units)."""

PDB_ARRAYS = ("atomtypes", "residuenames", "residuenumbers")


@dataclass(frozen=True)
class ForceFieldConfig:
    """Which OpenMM force field, and how the system is built.

    Attributes
    ----------
    forcefield : tuple of str
        OpenMM force-field XML files (those in the ``openmm`` wheel are found by name).
    constraints : str or None
        ``None`` (every bond flexible, the default for energies and references), or
        ``"HBonds"`` (bonds to hydrogen rigid, for 4 fs dynamics).
    hydrogen_mass : float or None
        Hydrogen mass in amu for hydrogen mass repartitioning (dynamics only: masses do
        not change the configurational Boltzmann distribution); ``None`` keeps 1.008.
    """

    forcefield: tuple[str, ...] = ("amber14/protein.ff14SB.xml", "implicit/gbn2.xml")
    constraints: str | None = None
    hydrogen_mass: float | None = None

    @property
    def label(self) -> str:
        """Short human-readable name, e.g. ``"ff14SB+GBn2"``."""
        names = {"amber14/protein.ff14SB.xml": "ff14SB", "implicit/gbn2.xml": "GBn2",
                 "implicit/obc2.xml": "OBC2", "amber19/protein.ff19SB.xml": "ff19SB"}
        return "+".join(names.get(f, f) for f in self.forcefield)


def topology_key(atoms: Atoms) -> tuple:
    """Hashable identity of a peptide's topology (names, residues, elements).

    Raises
    ------
    ValueError
        If ``atoms`` lacks the PDB arrays (not a peptide built or read by digmat/ASE).
    """
    missing = [k for k in PDB_ARRAYS if k not in atoms.arrays]
    if missing:
        raise ValueError(
            "these Atoms carry no PDB naming (arrays " + ", ".join(missing) + "); "
            "build them with digmat.protein.build_peptide or read a PDB file"
        )
    return (
        tuple(str(s).strip() for s in atoms.arrays["atomtypes"]),
        tuple(str(s).strip() for s in atoms.arrays["residuenames"]),
        tuple(int(i) for i in atoms.arrays["residuenumbers"]),
        tuple(atoms.get_chemical_symbols()),
    )


def pdb_text(atoms: Atoms, key: tuple | None = None) -> str:
    """One-model PDB text of a named peptide (chain A, standard column layout)."""
    names, resnames, resnums, symbols = key or topology_key(atoms)
    lines = []
    for i, (name, res, num, sym, (x, y, z)) in enumerate(
        zip(names, resnames, resnums, symbols, atoms.positions)
    ):
        field = name if len(name) == 4 or len(sym) == 2 else " " + name
        lines.append(
            f"ATOM  {(i + 1) % 100000:5d} {field:<4s} {res:>3s} A{num % 10000:4d}    "
            f"{x:8.3f}{y:8.3f}{z:8.3f}  1.00  0.00          {sym.upper():>2s}"
        )
    lines.append("END")
    return "\n".join(lines) + "\n"


@lru_cache(maxsize=64)
def _topology_from_key(key: tuple):
    require_protein_extra("openmm")
    from openmm import app

    positions = np.zeros((len(key[0]), 3))
    atoms = Atoms(list(key[3]), positions=positions)
    return app.PDBFile(io.StringIO(pdb_text(atoms, key))).topology


def peptide_topology(atoms: Atoms):
    """OpenMM :class:`~openmm.app.Topology` of a named peptide (bonds from residue templates).

    Cached by :func:`topology_key`; callers must not modify the returned object.
    """
    return _topology_from_key(topology_key(atoms))


@lru_cache(maxsize=4)
def load_forcefield(files: tuple[str, ...]):
    """OpenMM :class:`~openmm.app.ForceField` from XML files (cached)."""
    require_protein_extra("openmm")
    from openmm import app

    return app.ForceField(*files)


def create_system(atoms: Atoms, config: ForceFieldConfig = ForceFieldConfig()):
    """OpenMM :class:`~openmm.System` of a named peptide.

    Parameters
    ----------
    atoms : ase.Atoms
        Peptide with PDB arrays (see module docstring); hydrogens must be present.
    config : ForceFieldConfig

    Returns
    -------
    openmm.System

    Raises
    ------
    ValueError
        If the force field has no template for a residue (names the residue).
    """
    require_protein_extra("openmm")
    from openmm import app, unit

    topology = peptide_topology(atoms)
    constraints = {None: None, "HBonds": app.HBonds}[config.constraints]
    kwargs = {"nonbondedMethod": app.NoCutoff, "constraints": constraints}
    if config.hydrogen_mass is not None:
        kwargs["hydrogenMass"] = config.hydrogen_mass * unit.amu
    try:
        return load_forcefield(config.forcefield).createSystem(topology, **kwargs)
    except ValueError as err:
        first = str(err).split(" For more information")[0]
        raise ValueError(f"{config.label} cannot describe this peptide: {first}") from None


class OpenMMCalculator(Calculator):
    """ASE calculator for peptides with an OpenMM force field (energy in eV, forces in eV/Å).

    Parameters
    ----------
    config : ForceFieldConfig
        Force field; the default is ff14SB + GBn2 with no constraints.
    threads : int or None
        CPU threads of OpenMM's CPU platform (``None``: OpenMM's default).

    Notes
    -----
    One OpenMM context is kept per topology, so repeated calls on conformations of the
    same peptide cost one force evaluation each.
    """

    implemented_properties = ["energy", "free_energy", "forces"]

    def __init__(self, config: ForceFieldConfig = ForceFieldConfig(), threads: int | None = None, **kwargs):
        require_protein_extra("openmm")
        super().__init__(**kwargs)
        self.config = config
        self.threads = threads
        self._key = None
        self._context = None

    def _context_for(self, atoms: Atoms):
        import openmm
        from openmm import unit

        key = topology_key(atoms)
        if key != self._key:
            system = create_system(atoms, self.config)
            integrator = openmm.VerletIntegrator(1.0 * unit.femtoseconds)
            platform = openmm.Platform.getPlatformByName("CPU")
            properties = {} if self.threads is None else {"Threads": str(self.threads)}
            self._context = openmm.Context(system, integrator, platform, properties)
            self._key = key
        return self._context

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        from openmm import unit

        super().calculate(atoms, properties, system_changes)
        context = self._context_for(self.atoms)
        context.setPositions(self.atoms.positions * 0.1)  # Å -> nm
        state = context.getState(getEnergy=True, getForces=True)
        kj, nm = unit.kilojoule_per_mole, unit.nanometer
        energy = state.getPotentialEnergy().value_in_unit(kj) * KJ_PER_MOL
        forces = state.getForces(asNumpy=True).value_in_unit(kj / nm) * (KJ_PER_MOL / 10.0)
        self.results = {"energy": energy, "free_energy": energy, "forces": forces}
