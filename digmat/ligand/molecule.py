"""Ligands: read an SDF/MOL2 file or a SMILES string, protonate at a stated pH, give Atoms.

RDKit holds the ligand's graph (bond orders, formal charges, stereo); :class:`ase.Atoms`
carry its coordinates to calculators and writers, in the Mol's atom order.

Protonation is rule-based (the rules of :data:`PROTONATION_RULES`, in the spirit of Open
Babel's ``-p``): at pH 7 carboxylic, sulfonic and phosphonic/phosphoric acids lose a proton,
aliphatic amines and amidines/guanidines gain one.  Groups with a pKa within ~2 units of the
pH (imidazoles, anilines, phenols, tetrazoles) are left as drawn: check them by hand when it
matters.  A group within three bonds of a charge of the same sign is left neutral (the second
amine of a piperazine or an ethylenediamine has a pKa near 4–6).  ``ph=None`` keeps the
input's protonation exactly.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from ase import Atoms

from digmat.extras import require_extra

__all__ = ["PROTONATION_RULES", "ProtonationRule", "ligand_atoms", "ligand_bonds", "ligand_from_smiles", "protonate",
           "read_ligand"]


@dataclass(frozen=True)
class ProtonationRule:
    """An acid or base group: SMARTS of its neutral form, the atom that changes, its pKa.

    Parameters
    ----------
    name : str
        Human-readable group name.
    smarts : str
        Pattern of the neutral group; atom ``site`` of each match gains (``charge=+1``) or
        loses (``charge=-1``) one hydrogen.
    site : int
        Index in the pattern of the atom that is (de)protonated.
    charge : int
        +1 for a base (protonated below its pKa), -1 for an acid (deprotonated above it).
    pka : float
        Typical pKa of the group; the rule applies when the pH is on the charged side.
    """

    name: str
    smarts: str
    site: int
    charge: int
    pka: float

    def applies(self, ph: float) -> bool:
        """Whether the group is charged at ``ph`` (majority species)."""
        return ph > self.pka if self.charge < 0 else ph < self.pka


#: Groups protonated or deprotonated by :func:`protonate` (neutral forms; typical pKa).
PROTONATION_RULES: tuple[ProtonationRule, ...] = (
    ProtonationRule("carboxylic acid", "[CX3](=O)[OX2H1]", 2, -1, 4.5),
    ProtonationRule("sulfonic acid", "[SX4](=O)(=O)[OX2H1]", 3, -1, -1.0),
    ProtonationRule("phosphoric/phosphonic acid", "[PX4](=O)[OX2H1]", 2, -1, 2.0),
    ProtonationRule("amidine/guanidine", "[NX2;!$(N-[#7,#8]);!a]=[CX3;!a]-[NX3;!$(N-C=O);!$(N-S(=O)=O)]", 0, +1, 11.0),
    ProtonationRule("aliphatic amine",
                    "[NX3;H2,H1,H0;+0;!a;!$(N-a);!$(N-[C,S,P]=[O,S,N]);!$(N-[#7,#8,#16]);!$(N-C=C);!$(N-C#N)]",
                    0, +1, 10.0),
)


def _chem():
    require_extra("ligand", "rdkit")
    from rdkit import Chem, RDLogger

    RDLogger.DisableLog("rdApp.*")
    return Chem


def protonate(mol, ph: float = 7.0):
    """A copy of ``mol`` with the groups of :data:`PROTONATION_RULES` charged as at ``ph``.

    Hydrogens are re-added with coordinates (``Chem.AddHs(addCoords=True)``) when ``mol`` has a
    conformer; heavy-atom coordinates are unchanged.

    Parameters
    ----------
    mol : rdkit.Chem.Mol
        Sanitised ligand, with or without explicit hydrogens.
    ph : float
        pH of the solution.

    Returns
    -------
    rdkit.Chem.Mol
        Ligand with explicit hydrogens; ``GetProp("protonation")`` lists what changed.
    """
    Chem = _chem()
    heavy = Chem.RemoveHs(mol, sanitize=True)
    rw = Chem.RWMol(heavy)
    distance = Chem.GetDistanceMatrix(heavy)
    changed: list[str] = []
    for rule in PROTONATION_RULES:
        if not rule.applies(ph):
            continue
        pattern = Chem.MolFromSmarts(rule.smarts)
        done: set[int] = set()
        for match in rw.GetSubstructMatches(pattern):
            idx = match[rule.site]
            atom = rw.GetAtomWithIdx(idx)
            if idx in done or atom.GetFormalCharge() != 0:
                continue
            near = np.flatnonzero(distance[idx] <= 3)
            if any(rw.GetAtomWithIdx(int(j)).GetFormalCharge() * rule.charge > 0 for j in near):
                continue
            hydrogens = atom.GetTotalNumHs()
            if rule.charge < 0 and hydrogens == 0:
                continue
            atom.SetFormalCharge(rule.charge)
            atom.SetNoImplicit(True)
            atom.SetNumExplicitHs(hydrogens + rule.charge)
            done.add(idx)
            changed.append(f"{rule.name} ({atom.GetSymbol()}{idx + 1})")
        if done:
            Chem.SanitizeMol(rw)
    out = Chem.AddHs(rw.GetMol(), addCoords=rw.GetNumConformers() > 0)
    out.SetProp("protonation", f"pH {ph:g}: " + (", ".join(changed) if changed else "no change"))
    return out


def read_ligand(path: str | os.PathLike, *, ph: float | None = 7.0, index: int = 0):
    """A ligand with explicit hydrogens and 3-D coordinates from an SDF, MOL or MOL2 file.

    Parameters
    ----------
    path : str or PathLike
        ``.sdf``/``.mol`` (record ``index`` of a multi-record SDF) or ``.mol2``.
    ph : float or None
        Protonate at this pH (:func:`protonate`); ``None`` keeps the file's protonation
        (hydrogens are still added where missing).
    index : int
        Record of a multi-molecule SDF.

    Returns
    -------
    rdkit.Chem.Mol
        Sanitised ligand with explicit hydrogens and one conformer (Å).

    Raises
    ------
    ValueError
        Missing or unreadable file, a record RDKit cannot sanitise (with RDKit's reason), or
        a molecule without 3-D coordinates.
    """
    Chem = _chem()
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{str(path)!r} is not a file")
    suffix = path.suffix.lower()
    if suffix in (".sdf", ".mol", ".sd"):
        supplier = Chem.SDMolSupplier(str(path), sanitize=False, removeHs=False)
        if len(supplier) == 0:
            raise ValueError(f"{str(path)!r} holds no molecule")
        if not 0 <= index < len(supplier):
            raise ValueError(f"{str(path)!r} holds {len(supplier)} molecule(s); record {index} does not exist")
        mol = supplier[index]
    elif suffix == ".mol2":
        mol = Chem.MolFromMol2File(str(path), sanitize=False, removeHs=False)
    else:
        raise ValueError(f"{str(path)!r}: ligand files must be .sdf, .mol or .mol2")
    if mol is None or mol.GetNumAtoms() == 0:
        raise ValueError(f"{str(path)!r} (record {index}) is not a readable molecule")
    return _finish(mol, f"{str(path)!r}", ph)


def ligand_from_smiles(smiles: str, center, *, ph: float | None = 7.0, seed: int = 0):
    """A ligand from SMILES: one ETKDG conformer with its centroid at ``center`` (Å).

    Raises
    ------
    ValueError
        SMILES RDKit cannot parse or sanitise, a centre that is not three finite numbers, or a
        molecule for which no conformer can be embedded.
    """
    Chem = _chem()
    from rdkit.Chem import AllChem

    center = np.asarray(center, dtype=float)
    if center.shape != (3,) or not np.isfinite(center).all():
        raise ValueError(f"the box centre must be three finite numbers (Å), got {center.tolist()}")
    mol = Chem.MolFromSmiles(smiles, sanitize=False)
    if mol is None or mol.GetNumAtoms() == 0:
        raise ValueError(f"RDKit cannot parse the SMILES {smiles!r}")
    mol = _sanitised(mol, f"SMILES {smiles!r}")
    mol = protonate(mol, ph) if ph is not None else Chem.AddHs(mol)
    params = AllChem.ETKDGv3()
    params.randomSeed = int(seed)
    if AllChem.EmbedMolecule(mol, params) != 0:
        raise ValueError(f"RDKit could not embed a 3-D conformer of {smiles!r}")
    conf = mol.GetConformer()
    xyz = conf.GetPositions()
    xyz += center - xyz.mean(axis=0)
    for i, p in enumerate(xyz):
        conf.SetAtomPosition(i, p.tolist())
    return mol


def _sanitised(mol, what: str):
    Chem = _chem()
    try:
        Chem.SanitizeMol(mol)
    except Exception as err:  # RDKit raises several exception types with the reason in the text
        raise ValueError(f"RDKit cannot sanitise {what}: {str(err).strip().splitlines()[0]}") from None
    return mol


def _finish(mol, what: str, ph: float | None):
    Chem = _chem()
    mol = _sanitised(mol, what)
    if mol.GetNumConformers() == 0 or not mol.GetConformer().Is3D():
        raise ValueError(f"{what} has no 3-D coordinates; give SMILES and a box centre instead")
    if ph is not None:
        return protonate(mol, ph)
    return Chem.AddHs(mol, addCoords=True)


def ligand_atoms(mol) -> Atoms:
    """The ligand as :class:`ase.Atoms` in the Mol's atom order (positions in Å).

    ``info`` holds ``smiles`` and ``charge`` (the sum of formal charges, e).
    """
    Chem = _chem()
    if mol.GetNumConformers() == 0:
        raise ValueError("the ligand has no conformer")
    atoms = Atoms([a.GetSymbol() for a in mol.GetAtoms()], positions=mol.GetConformer().GetPositions())
    atoms.info["smiles"] = Chem.MolToSmiles(Chem.RemoveHs(mol))
    atoms.info["charge"] = int(Chem.GetFormalCharge(mol))
    return atoms


def ligand_bonds(mol) -> np.ndarray:
    """(B, 2) int: the atom index pairs of the Mol's bonds (hydrogens included where explicit)."""
    return np.array([(b.GetBeginAtomIdx(), b.GetEndAtomIdx()) for b in mol.GetBonds()], int).reshape(-1, 2)
