"""Binding pockets: protonated protein residues around a ligand or a box centre, capped.

A pocket is every residue with a heavy atom within ``radius`` Å of a reference point (the
ligand's heavy atoms, or a box centre), with hydrogens added by OpenMM at the stated pH and a
hydrogen cap on every bond the cut breaks (along the broken bond, at the X–H bond length), so
that a force field sees closed shells.  OpenMM places hydrogens approximately (X–H 1.0–1.2 Å);
every X–H bond is set to the standard length of :data:`XH_BOND_LENGTHS` along its direction.  Waters are removed.  Other hetero groups (cofactors,
ions, other ligand copies) within the radius are kept with the atoms the file gives — usually
no hydrogens — and are named in :attr:`Pocket.hetero` so that callers can warn.

Atoms carry ``atomtypes`` (PDB atom names), ``residuenames``, ``residuenumbers`` and
``chainids`` arrays, like :func:`digmat.protein.read_peptide`'s, and ``info["charge"]``, the
pocket's formal charge in e (ASP, GLU, C-termini −1; LYS, ARG, doubly protonated HIS,
N-termini +1; caps and hetero groups 0).
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from ase import Atoms

from digmat.extras import require_extra

__all__ = ["BACKBONE_NAMES", "XH_BOND_LENGTHS", "Pocket", "extract_pocket", "read_protein", "residue_charge",
           "side_chain_atoms"]

WATERS = frozenset({"HOH", "WAT", "H2O", "DOD", "TIP3", "SOL"})
#: X–H bond lengths (Å) for added hydrogens and for caps on cut bonds at an atom of element X.
XH_BOND_LENGTHS = {"C": 1.09, "N": 1.01, "O": 0.97, "S": 1.34, "P": 1.42, "Se": 1.46}
#: PDB names of backbone atoms (and their hydrogens, N-terminal ones included): held by
#: :func:`side_chain_atoms`' flexible pockets.
BACKBONE_NAMES = frozenset({"N", "CA", "C", "O", "OXT", "H", "H1", "H2", "H3", "HN", "HA", "HA2", "HA3"})
_MARGIN = 12.0  # Å protonated beyond the pocket, so that no false chain terminus reaches it


@dataclass(frozen=True, eq=False)
class Pocket:
    """A capped, protonated binding pocket.

    Attributes
    ----------
    atoms : ase.Atoms
        Pocket atoms (Å) with hydrogens and caps (cap atoms have ``atomtypes`` ``"HCAP"``).
    center : numpy.ndarray
        Shape (3,), Å: the centroid of the reference points.
    radius : float
        Å: residues with a heavy atom this close to a reference point are in.
    residues : tuple of str
        ``"A:ASP27"``-style labels of the pocket's protein residues.
    hetero : tuple of str
        Labels of non-protein, non-water residues kept as given (cofactors, ions).
    n_caps : int
        Hydrogen caps added on cut bonds.
    source : str
        The protein file, when read from one.
    """

    atoms: Atoms
    center: np.ndarray
    radius: float
    residues: tuple[str, ...]
    hetero: tuple[str, ...] = ()
    n_caps: int = 0
    source: str = field(default="", repr=False)

    @property
    def charge(self) -> int:
        """Formal charge of the pocket (e)."""
        return int(self.atoms.info["charge"])


def read_protein(path: str | os.PathLike):
    """An OpenMM ``(topology, positions)`` from a PDB or mmCIF file, waters removed.

    Raises
    ------
    ValueError
        Missing, unreadable or empty file, or a file without protein residues.
    """
    require_extra("ligand", "openmm")
    from openmm import app

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{str(path)!r} is not a file")
    cif = path.suffix.lower() in (".cif", ".mmcif")
    try:
        structure = (app.PDBxFile if cif else app.PDBFile)(str(path))
    except Exception as err:  # OpenMM raises bare Exceptions on malformed input
        first = str(err).splitlines()[0] if str(err) else ""
        raise ValueError(f"{str(path)!r} is not a readable {'mmCIF' if cif else 'PDB'} file "
                         f"({type(err).__name__}: {first})") from None
    modeller = app.Modeller(structure.topology, structure.positions)
    modeller.delete([r for r in modeller.topology.residues() if r.name in WATERS])
    if not any(_is_protein(r) for r in modeller.topology.residues()):
        raise ValueError(f"{str(path)!r} holds no protein residues")
    return modeller.topology, modeller.positions


def _is_protein(residue) -> bool:
    return {"N", "CA", "C"} <= {a.name for a in residue.atoms()}


def _label(residue) -> str:
    return f"{residue.chain.id}:{residue.name}{residue.id}"


def residue_charge(residue, disulfide: bool = False) -> int:
    """Formal charge (e) of a protonated protein residue from its name and hydrogens.

    Parameters
    ----------
    residue : openmm.app.Residue
        A residue after :meth:`openmm.app.Modeller.addHydrogens`.
    disulfide : bool
        Whether its SG is in a disulfide bond (then a CYS without HG is neutral).
    """
    names = {a.name for a in residue.atoms()}
    charge = 0
    if residue.name in ("ASP", "GLU") and not names & {"HD2", "HE2"}:
        charge -= 1
    if residue.name == "LYS" and "HZ3" in names:
        charge += 1
    if residue.name == "ARG":
        charge += 1
    if residue.name in ("HIS", "HIP", "HID", "HIE") and {"HD1", "HE2"} <= names:
        charge += 1
    if residue.name == "CYS" and "SG" in names and "HG" not in names and not disulfide:
        charge -= 1
    if "H3" in names or {"H1", "H2"} <= names:  # N-terminal NH3+
        charge += 1
    if "OXT" in names:
        charge -= 1
    return charge


def extract_pocket(protein, reference, *, radius: float = 8.0, ph: float = 7.0) -> Pocket:
    """The protonated, capped pocket of ``protein`` around ``reference``.

    Parameters
    ----------
    protein : str, PathLike or (topology, positions)
        PDB/mmCIF file (hydrogens optional) or what :func:`read_protein` returns.
    reference : array_like
        Shape (3,) box centre or (n, 3) reference points (the ligand's heavy atoms), Å.
    radius : float
        Å; residues with a heavy atom within it of a reference point form the pocket.
    ph : float
        pH for OpenMM's hydrogen placement (residue pKa's).

    Raises
    ------
    ValueError
        Unreadable protein, non-finite reference, non-positive radius, or no protein atom
        within ``radius`` of the reference (a box outside the protein).
    """
    require_extra("ligand", "openmm")
    import openmm
    from openmm import app, unit

    points = np.atleast_2d(np.asarray(reference, dtype=float))
    if points.ndim != 2 or points.shape[1] != 3 or len(points) == 0 or not np.isfinite(points).all():
        raise ValueError("the pocket reference must be a finite centre (3,) or points (n, 3) in Å")
    if not radius > 0:
        raise ValueError(f"pocket radius must be > 0 Å, got {radius}")
    source = str(protein) if isinstance(protein, (str, os.PathLike)) else ""
    topology, positions = read_protein(protein) if source else protein
    if not unit.is_quantity(positions):
        positions = np.asarray(positions, float) * unit.angstrom
    xyz = np.asarray(positions.value_in_unit(unit.angstrom), float)

    near = _residue_distances(topology, xyz, points)
    if not any(near[r.index] <= radius for r in topology.residues() if _is_protein(r)):
        raise ValueError(f"no protein atom within {radius:g} Å of the ligand/box centre (closest "
                         f"{min(near):.1f} Å): is the box outside the protein?")
    modeller = app.Modeller(topology, positions)
    modeller.delete([r for r in topology.residues() if near[r.index] > radius + _MARGIN])
    # OpenMM places new hydrogens at positions jittered with Python's global `random`, then
    # minimises them briefly: seeded here (and the caller's state restored) and minimised on the
    # Reference platform (the multi-threaded CPU one sums forces in a varying order), so a pocket is
    # the same on every call — before, one H of 1uou's pocket ended 1.28-1.75 Å from a second heavy atom
    state = random.getstate()
    random.seed(0)
    try:
        modeller.addHydrogens(pH=ph, platform=openmm.Platform.getPlatformByName("Reference"))
    except Exception as err:
        raise ValueError(f"could not add hydrogens to the protein: {str(err).split(' For more information')[0]}") from None
    finally:
        random.setstate(state)
    return _cut(modeller.topology, modeller.positions, points, radius, source)


def _residue_distances(topology, xyz: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Each residue's closest heavy-atom distance (Å) to any reference point, by residue index."""
    heavy = np.array([a.element is not None and a.element.symbol != "H" for a in topology.atoms()])
    residue_of = np.array([a.residue.index for a in topology.atoms()], dtype=int)
    d = np.full(len(xyz), np.inf)
    for start in range(0, len(xyz), 4096):
        block = xyz[start:start + 4096]
        d[start:start + 4096] = np.sqrt(((block[:, None, :] - points[None]) ** 2).sum(-1)).min(1)
    d[~heavy] = np.inf
    out = np.full(topology.getNumResidues(), np.inf)
    np.minimum.at(out, residue_of, d)
    return out


def _cut(topology, positions, points: np.ndarray, radius: float, source: str) -> Pocket:
    from openmm import unit

    xyz = np.asarray(positions.value_in_unit(unit.angstrom), float)
    for a, b in topology.bonds():
        hydrogen, heavy = (a, b) if a.element.symbol == "H" else (b, a)
        if hydrogen.element.symbol == "H" and heavy.element.symbol != "H":
            bond = xyz[hydrogen.index] - xyz[heavy.index]
            length = XH_BOND_LENGTHS.get(heavy.element.symbol, 1.09)
            xyz[hydrogen.index] = xyz[heavy.index] + length * bond / np.linalg.norm(bond)
    near = _residue_distances(topology, xyz, points)
    keep = {r.index for r in topology.residues() if near[r.index] <= radius}
    atoms = [a for a in topology.atoms() if a.residue.index in keep]
    caps, disulfides = [], set()
    for a, b in topology.bonds():
        if a.name == "SG" and b.name == "SG":
            disulfides |= {a.residue.index, b.residue.index}
        for inner, outer in ((a, b), (b, a)):
            if inner.residue.index in keep and outer.residue.index not in keep:
                direction = xyz[outer.index] - xyz[inner.index]
                length = XH_BOND_LENGTHS.get(inner.element.symbol, 1.09)
                caps.append((inner, xyz[inner.index] + length * direction / np.linalg.norm(direction)))
    positions_out = np.vstack([xyz[[a.index for a in atoms]]] + [p[None] for _, p in caps])
    out = Atoms([a.element.symbol for a in atoms] + ["H"] * len(caps), positions=positions_out)
    owners = atoms + [inner for inner, _ in caps]
    out.set_array("atomtypes", np.array([a.name for a in atoms] + ["HCAP"] * len(caps), dtype="<U4"))
    out.set_array("residuenames", np.array([a.residue.name for a in owners], dtype="<U4"))
    out.set_array("residuenumbers", np.array([_number(a.residue) for a in owners], dtype=int))
    out.set_array("chainids", np.array([a.residue.chain.id for a in owners], dtype="<U2"))
    residues = [r for r in topology.residues() if r.index in keep]
    protein = [r for r in residues if _is_protein(r)]
    out.info["charge"] = sum(residue_charge(r, r.index in disulfides) for r in protein)
    return Pocket(atoms=out, center=points.mean(axis=0), radius=float(radius),
                  residues=tuple(_label(r) for r in protein),
                  hetero=tuple(_label(r) for r in residues if not _is_protein(r)),
                  n_caps=len(caps), source=source)


def _number(residue) -> int:
    digits = "".join(ch for ch in str(residue.id) if ch.isdigit() or ch == "-")
    return int(digits) if digits not in ("", "-") else residue.index + 1


def side_chain_atoms(pocket: Pocket, points, radius: float = 5.0) -> np.ndarray:
    """Indices of the side-chain atoms of the pocket's protein residues that come within ``radius`` Å of ``points``.

    A flexible pocket for :func:`~digmat.ligand.physics.relax_ligand` (``free=``): the backbone
    (:data:`BACKBONE_NAMES`), the caps on cut bonds and hetero groups stay fixed, so the cut edge
    and the fold do not move.

    Parameters
    ----------
    pocket : Pocket
    points : array_like
        (P, 3) Å, e.g. the heavy atoms of every ligand pose to be compared (one flexible set for all).
    radius : float
        Å: a residue is flexible when any of its atoms is this close to a point.

    Returns
    -------
    numpy.ndarray
        (F,) int, sorted.
    """
    points = np.asarray(points, float).reshape(-1, 3)
    if not radius > 0 or not len(points):
        raise ValueError(f"need points and a radius > 0 Å, got {len(points)} points and {radius}")
    atoms = pocket.atoms
    names, chains, numbers = atoms.arrays["atomtypes"], atoms.arrays["chainids"], atoms.arrays["residuenumbers"]
    labels = np.array([f"{c}:{r}{n}" for c, r, n in zip(chains, atoms.arrays["residuenames"], numbers)])
    close = np.zeros(len(atoms), bool)
    for chunk in np.array_split(np.arange(len(points)), max(1, len(points) // 256)):
        d = np.linalg.norm(atoms.positions[:, None] - points[chunk][None], axis=-1)
        close |= d.min(axis=1) <= radius
    near = set(labels[close & (names != "HCAP")]) - set(pocket.hetero)
    keep = np.isin(labels, list(near)) & ~np.isin(names, list(BACKBONE_NAMES)) & (names != "HCAP")
    return np.flatnonzero(keep)

