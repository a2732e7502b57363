"""Capped peptides from a one-letter sequence or a PDB file, as named :class:`ase.Atoms`.

``build_peptide("A")`` is alanine dipeptide, ACE-ALA-NME: RDKit builds the heavy atoms
with PDB names and L chirality (``Chem.MolFromSequence`` plus acetyl and N-methylamide
caps) and embeds them (ETKDG); OpenMM's :class:`~openmm.app.Modeller` adds hydrogens with
the force field's names and protonation states at pH 7 (Asp/Glu charged, Lys/Arg
protonated, His neutral), and a short minimisation in the force field relaxes the result.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
from ase import Atoms

from digmat.protein.extra import require_protein_extra
from digmat.protein.forcefield import ForceFieldConfig, create_system, load_forcefield

__all__ = ["AMINO_ACIDS", "CAPS", "build_peptide", "read_peptide", "atoms_from_openmm", "check_sequence"]

AMINO_ACIDS = {
    "A": "ALA", "R": "ARG", "N": "ASN", "D": "ASP", "C": "CYS", "Q": "GLN", "E": "GLU",
    "G": "GLY", "H": "HIS", "I": "ILE", "L": "LEU", "K": "LYS", "M": "MET", "F": "PHE",
    "P": "PRO", "S": "SER", "T": "THR", "W": "TRP", "Y": "TYR", "V": "VAL",
}
"""One-letter code → residue name of the 20 standard amino acids."""

CAPS = ("ACE", "NME")
"""N-terminal acetyl and C-terminal N-methylamide caps."""

PROTEIN_RESIDUES = set(AMINO_ACIDS.values()) | set(CAPS) | {"HID", "HIE", "HIP", "CYX", "ASH", "GLH", "LYN", "NH2"}

MAX_RESIDUES = 50


def check_sequence(sequence: str) -> str:
    """Validate a one-letter sequence and return it upper-cased.

    Raises
    ------
    ValueError
        Empty, too long, or with a letter that is not a standard amino acid (names it).
    """
    if not isinstance(sequence, str) or not sequence.strip():
        raise ValueError("the sequence is empty; give one-letter amino-acid codes, e.g. 'A' or 'GAV'")
    seq = sequence.strip().upper()
    for i, letter in enumerate(seq):
        if letter not in AMINO_ACIDS:
            raise ValueError(
                f"{letter!r} at position {i + 1} of {sequence!r} is not one of the 20 standard "
                f"amino acids ({''.join(sorted(AMINO_ACIDS))})"
            )
    if len(seq) > MAX_RESIDUES:
        raise ValueError(f"{len(seq)} residues: the peptide builder takes at most {MAX_RESIDUES}")
    return seq


def _capped_heavy_atoms(seq: str):
    """RDKit molecule ACE-seq-NME, heavy atoms only, PDB-named, atoms ordered by residue."""
    from rdkit import Chem

    mol = Chem.RWMol(Chem.MolFromSequence(seq))
    for atom in mol.GetAtoms():
        info = atom.GetPDBResidueInfo()
        info.SetResidueNumber(info.GetResidueNumber() + 1)

    def named(index):
        info = mol.GetAtomWithIdx(index).GetPDBResidueInfo()
        return info.GetName().strip(), info.GetResidueNumber()

    n_term = next(a.GetIdx() for a in mol.GetAtoms() if named(a.GetIdx()) == ("N", 2))
    oxt = next(a.GetIdx() for a in mol.GetAtoms() if named(a.GetIdx())[0] == "OXT")
    c_term = mol.GetAtomWithIdx(oxt).GetNeighbors()[0].GetIdx()
    last = len(seq) + 2

    def add(symbol, name, residue, number):
        index = mol.AddAtom(Chem.Atom(symbol))
        label = name if len(name) == 4 else " " + name.ljust(3)
        info = Chem.AtomPDBResidueInfo(label, residueName=residue, residueNumber=number, chainId="A")
        mol.GetAtomWithIdx(index).SetMonomerInfo(info)
        return index

    single, double = Chem.BondType.SINGLE, Chem.BondType.DOUBLE
    c, o, ch3 = add("C", "C", "ACE", 1), add("O", "O", "ACE", 1), add("C", "CH3", "ACE", 1)
    mol.AddBond(c, o, double)
    mol.AddBond(c, ch3, single)
    mol.AddBond(c, n_term, single)
    n, cm = add("N", "N", "NME", last), add("C", "C", "NME", last)
    mol.AddBond(n, cm, single)
    mol.AddBond(c_term, n, single)
    mol.RemoveAtom(oxt)
    _fix_isoleucine_names(mol)
    out = mol.GetMol()
    Chem.SanitizeMol(out)
    order = sorted(range(out.GetNumAtoms()),
                   key=lambda i: (out.GetAtomWithIdx(i).GetPDBResidueInfo().GetResidueNumber(), i))
    return Chem.RenumberAtoms(out, order)


def _fix_isoleucine_names(mol) -> None:
    """Name the γ carbon bonded to CD1 ``CG1`` (``MolFromSequence`` swaps CG1/CG2 in Ile)."""
    for atom in mol.GetAtoms():
        info = atom.GetPDBResidueInfo()
        if info.GetResidueName() != "ILE" or info.GetName().strip() != "CD1":
            continue
        gamma = atom.GetNeighbors()[0]
        if gamma.GetPDBResidueInfo().GetName().strip() == "CG1":
            continue
        other = next(n for n in gamma.GetNeighbors()[0].GetNeighbors()
                     if n.GetPDBResidueInfo().GetName().strip() == "CG1"
                     and n.GetPDBResidueInfo().GetResidueNumber() == info.GetResidueNumber())
        gamma.GetPDBResidueInfo().SetName(" CG1")
        other.GetPDBResidueInfo().SetName(" CG2")


def atoms_from_openmm(topology, positions) -> Atoms:
    """Named :class:`ase.Atoms` from an OpenMM topology and positions (nm Quantity or Å array)."""
    from openmm import unit

    if unit.is_quantity(positions):
        positions = positions.value_in_unit(unit.angstrom)
    atoms = Atoms(
        [a.element.symbol for a in topology.atoms()],
        positions=np.asarray(positions, dtype=float).reshape(-1, 3),
    )
    atoms.set_array("atomtypes", np.array([a.name for a in topology.atoms()], dtype="<U4"))
    atoms.set_array("residuenames", np.array([a.residue.name for a in topology.atoms()], dtype="<U4"))
    numbers = [int("".join(ch for ch in a.residue.id if ch.isdigit() or ch == "-") or a.residue.index + 1)
               for a in topology.atoms()]
    atoms.set_array("residuenumbers", np.array(numbers, dtype=int))
    return atoms


def _minimize(atoms: Atoms, config: ForceFieldConfig, tolerance: float = 1.0) -> Atoms:
    """Local energy minimum (L-BFGS in OpenMM; tolerance in kJ/mol/nm)."""
    import openmm
    from openmm import unit

    context = openmm.Context(create_system(atoms, config), openmm.VerletIntegrator(1.0),
                             openmm.Platform.getPlatformByName("CPU"))
    context.setPositions(atoms.positions * 0.1)
    openmm.LocalEnergyMinimizer.minimize(context, tolerance)
    out = atoms.copy()
    out.positions = context.getState(getPositions=True).getPositions(asNumpy=True).value_in_unit(unit.angstrom)
    return out


def build_peptide(sequence: str, *, seed: int = 0, minimize: bool = True,
                  config: ForceFieldConfig = ForceFieldConfig()) -> Atoms:
    """A capped peptide ACE-sequence-NME with hydrogens, as named Atoms.

    Parameters
    ----------
    sequence : str
        One-letter amino-acid codes, e.g. ``"A"`` (alanine dipeptide) or ``"GAV"``.
    seed : int
        Seed of RDKit's conformer embedding (the starting conformation).
    minimize : bool
        Relax the structure in the force field (default True).
    config : ForceFieldConfig
        Force field used for hydrogen templates and the minimisation.

    Returns
    -------
    ase.Atoms
        Non-periodic, positions in Å, arrays ``atomtypes``/``residuenames``/``residuenumbers``.
    """
    seq = check_sequence(sequence)
    require_protein_extra()
    from openmm import app
    from rdkit import Chem
    from rdkit.Chem import AllChem

    heavy = _capped_heavy_atoms(seq)
    with_h = Chem.AddHs(heavy)
    params = AllChem.ETKDGv3()
    params.randomSeed = int(seed)
    if AllChem.EmbedMolecule(with_h, params) != 0:
        params.useRandomCoords = True  # more robust for long chains
    if with_h.GetNumConformers() == 0 and AllChem.EmbedMolecule(with_h, params) != 0:
        raise RuntimeError(f"RDKit could not embed the peptide {seq!r} (seed {seed})")
    heavy = Chem.RemoveHs(with_h)
    pdb = app.PDBFile(io.StringIO(Chem.MolToPDBBlock(heavy, flavor=2)))
    modeller = app.Modeller(pdb.topology, pdb.positions)
    modeller.addHydrogens(load_forcefield(config.forcefield), pH=7.0)
    atoms = atoms_from_openmm(modeller.topology, modeller.positions)
    return _minimize(atoms, config) if minimize else atoms


def read_peptide(path: str | os.PathLike, *, config: ForceFieldConfig = ForceFieldConfig()) -> Atoms:
    """A peptide from a PDB file, with missing hydrogens added (heavy atoms unchanged).

    Raises
    ------
    ValueError
        If the file is unreadable, holds no atoms, or holds non-protein residues (named).
    """
    require_protein_extra("openmm")
    from openmm import app

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{str(path)!r} is not a file")
    with open(path, errors="replace") as handle:
        if not any(line.startswith(("ATOM", "HETATM")) for line in handle):
            raise ValueError(f"{str(path)!r} holds no atoms (no ATOM/HETATM records)")
    try:
        pdb = app.PDBFile(str(path))
    except Exception as err:  # OpenMM raises bare Exceptions on malformed input
        raise ValueError(f"{str(path)!r} is not a readable PDB file ({type(err).__name__}: {err})") from None
    residues = [r.name for r in pdb.topology.residues()]
    if not residues:
        raise ValueError(f"{str(path)!r} holds no atoms")
    other = sorted({r for r in residues if r not in PROTEIN_RESIDUES})
    if other:
        raise ValueError(f"{str(path)!r} holds non-peptide residues ({', '.join(other)}); remove them first")
    modeller = app.Modeller(pdb.topology, pdb.positions)
    try:
        modeller.addHydrogens(load_forcefield(config.forcefield), pH=7.0)
    except ValueError as err:
        raise ValueError(f"{str(path)!r}: {str(err).split(' For more information')[0]}") from None
    return atoms_from_openmm(modeller.topology, modeller.positions)
