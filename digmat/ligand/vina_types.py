"""AutoDock atom typing for Vina: AD and XS types, Vina's covalent bonds, receptor typing,
PDBQT writing and ligand preparation with meeko.

What :mod:`digmat.ligand.vina`'s scoring function reads. Follows AutoDock Vina 1.2
(``atom_constants.h``, ``parse_pdbqt.cpp``, ``model.cpp``): XS typing from AD types and covalent
bonds (C bonded to a heteroatom is C_P, else C_H; N/O bonded to HD are donors, NA/OA acceptors;
metals are donors, Met_D); hydrogens carry no XS type. Units: Å.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from digmat.extras import require_extra

__all__ = ["XS_NAMES", "XS_RADII", "XS_HYDROPHOBIC", "XS_ACCEPTOR", "XS_DONOR", "vina_bonds", "xs_types",
           "receptor_ad_types", "write_receptor_pdbqt", "ligand_ad_types", "prepare_ligand", "VinaLigand",
           "ligand_positions_from_pdbqt"]

XS_NAMES = ("C_H", "C_P", "N_P", "N_D", "N_A", "N_DA", "O_P", "O_D", "O_A", "O_DA",
            "S_P", "P_P", "F_H", "Cl_H", "Br_H", "I_H", "Si", "At", "Met_D")
#: XS van der Waals radii (Å), ``xs_vdw_radii``.
XS_RADII = (1.9, 1.9, 1.8, 1.8, 1.8, 1.8, 1.7, 1.7, 1.7, 1.7, 2.0, 2.1, 1.5, 1.8, 2.0, 2.2, 2.2, 2.3, 1.2)
_XS = {n: i for i, n in enumerate(XS_NAMES)}
#: XS types of the hydrophobic, acceptor and donor classes (indices into :data:`XS_NAMES`).
XS_HYDROPHOBIC = {_XS[n] for n in ("C_H", "F_H", "Cl_H", "Br_H", "I_H")}
XS_ACCEPTOR = {_XS[n] for n in ("N_A", "N_DA", "O_A", "O_DA")}
XS_DONOR = {_XS[n] for n in ("N_D", "N_DA", "O_D", "O_DA", "Met_D")}
# AD type -> covalent radius (Å) (atom_kind_data) and element class.
_AD_COV = {"C": .77, "A": .77, "N": .75, "O": .73, "P": 1.06, "S": 1.02, "H": .37, "F": .71, "I": 1.33,
           "NA": .75, "OA": .73, "SA": 1.02, "HD": .37, "Mg": 1.30, "Mn": 1.39, "Zn": 1.31, "Ca": 1.74,
           "Fe": 1.25, "Cl": .99, "Br": 1.14, "Si": 1.11, "At": 1.44}
_AD_EL = {"A": "C", "NA": "N", "OA": "O", "SA": "S", "HD": "H", "Mg": "Met", "Mn": "Met", "Zn": "Met",
          "Ca": "Met", "Fe": "Met"}
_NON_AD_METALS = {"Cu", "Fe", "Na", "K", "Hg", "Co", "U", "Cd", "Ni"}
_MAX_COV = max(_AD_COV.values())   # max_covalent_radius() = 1.74 (Ca)
_METAL_COV = 1.75                  # metal_covalent_radius, non-AD metals
_NOT_HETERO = {"C", "A", "H", "HD"}


def _cov(t):
    """(covalent radius for the bond length, radius for Vina's neighbour search) of an AD type."""
    if t in _AD_COV:
        return _AD_COV[t], _AD_COV[t]
    if t in _NON_AD_METALS:
        return _METAL_COV, _MAX_COV
    raise ValueError(f"atom type {t!r} is not a valid AutoDock/Vina type")


def _neighbours(n, bonds):
    nbrs = [[] for _ in range(n)]
    for i, j in np.asarray(bonds, dtype=np.int64).reshape(-1, 2):
        nbrs[i].append(int(j))
        nbrs[j].append(int(i))
    return nbrs


def vina_bonds(ad_types, positions) -> np.ndarray:
    """Covalent bonds inferred from distances as Vina's ``model::assign_bonds`` does.

    Atoms ``i < j`` are bonded if ``r_ij < 1.1 (c_i + c_j)`` (AD covalent radii) and no third
    atom ``k`` of ``i``'s neighbourhood is closer than ``r_ij`` to both (``atom_exists_between``).

    Parameters
    ----------
    ad_types : sequence of str, length N
        AD types (element symbols like ``"C"``, ``"N"``, ``"Zn"`` work as well).
    positions : array_like, shape (N, 3), Å

    Returns
    -------
    numpy.ndarray, shape (n_bonds, 2), int
    """
    from scipy.spatial import cKDTree

    pos = np.asarray(positions, dtype=np.float64)
    cov = np.array([_cov(t) for t in ad_types]).reshape(-1, 2)
    reach = 1.1 * (cov[:, 1] + _MAX_COV)
    bonds = []
    for i, cand in enumerate(cKDTree(pos).query_ball_point(pos, reach.max() + 1e-9)):
        cand = np.array([j for j in cand if j != i], dtype=np.int64)
        r2 = ((pos[cand] - pos[i]) ** 2).sum(1)
        rel, rel_r2 = cand[r2 < reach[i] ** 2], r2[r2 < reach[i] ** 2]
        for j, rij2 in zip(rel, rel_r2):
            if j <= i or rij2 >= (1.1 * (cov[i, 0] + cov[j, 0])) ** 2:
                continue
            other = rel != j
            if not np.any((rel_r2[other] < rij2) & (((pos[rel[other]] - pos[j]) ** 2).sum(1) < rij2)):
                bonds.append((i, int(j)))
    return np.array(bonds, dtype=np.int64).reshape(-1, 2)


def xs_types(ad_types, bonds) -> np.ndarray:
    """XS types from AD types and bonds (Vina's ``model::assign_types``).

    Parameters
    ----------
    ad_types : sequence of str or None, length N (None: atom absent from the PDBQT)
    bonds : array_like, shape (n_bonds, 2), int

    Returns
    -------
    numpy.ndarray, shape (N,), int: index into :data:`XS_NAMES`, -1 for H and absent atoms.
    """
    nbrs = _neighbours(len(ad_types), bonds)
    out = np.full(len(ad_types), -1, dtype=np.int64)
    for i, t in enumerate(ad_types):
        if t is None:
            continue
        if t in ("G0", "G1", "G2", "G3", "CG0", "CG1", "CG2", "CG3", "W"):
            raise ValueError(f"Vina glue/water type {t!r} is not supported; "
                             "prepare macrocycles with rigid_macrocycles=True")
        el = "Met" if t in _NON_AD_METALS else _AD_EL.get(t, t)
        nt = [ad_types[j] for j in nbrs[i]]
        donor, acceptor = "HD" in nt, t in ("NA", "OA")
        if el == "C":
            out[i] = _XS["C_P" if any(x is not None and x not in _NOT_HETERO for x in nt) else "C_H"]
        elif el in ("N", "O"):
            out[i] = _XS[el + ("_DA" if donor and acceptor else "_A" if acceptor else "_D" if donor else "_P")]
        elif el != "H":
            out[i] = _XS[{"S": "S_P", "P": "P_P", "F": "F_H", "Cl": "Cl_H", "Br": "Br_H", "I": "I_H",
                          "Si": "Si", "At": "At", "Met": "Met_D"}[el]]
    return out


_HIS = {"HIS", "HID", "HIE", "HIP", "HSD", "HSE", "HSP"}
_AROMATIC_C = {"PHE": {"CG", "CD1", "CD2", "CE1", "CE2", "CZ"}, "TYR": {"CG", "CD1", "CD2", "CE1", "CE2", "CZ"},
               "TRP": {"CG", "CD1", "CD2", "CE2", "CE3", "CZ2", "CZ3", "CH2"},
               **{r: {"CG", "CD2", "CE1"} for r in _HIS}}


def receptor_ad_types(elements, atom_names, residue_names, positions) -> list:
    """AutoDock types of a protonated protein, following meeko's AD4 SMARTS rules.

    H bonded to N, O, S, P or F -> ``HD``, other H -> None (merged, as receptor preparation
    does); ring C of PHE/TYR/TRP/HIS -> ``A``, other C -> ``C``; O -> ``OA``; S with two
    neighbours -> ``SA`` else ``S``; N -> ``NA`` for acceptors only: HIS ring N without H and
    neutral amines (LYS NZ, N-terminus not protonated), else ``N`` (amides, ARG, TRP,
    cations). Other residues: N without H and with at most two neighbours -> ``NA``.
    Metals keep their symbol; Se -> ``S``. Bonds come from :func:`vina_bonds`.

    Parameters
    ----------
    elements, atom_names, residue_names : sequences of str, length N
    positions : array_like, shape (N, 3), Å

    Returns
    -------
    list of str or None, length N
    """
    el = ["S" if e.strip().capitalize() == "Se" else e.strip().capitalize() for e in elements]
    nbrs = _neighbours(len(el), vina_bonds(el, positions))
    out = []
    for i, e in enumerate(el):
        name, res = atom_names[i].strip().upper(), residue_names[i].strip().upper()
        n_h, conn = sum(el[j] == "H" for j in nbrs[i]), len(nbrs[i])
        if e == "H":
            out.append("HD" if any(el[j] in ("N", "O", "S", "P", "F") for j in nbrs[i]) else None)
        elif e in ("C", "O", "S"):
            out.append({"C": "A" if name in _AROMATIC_C.get(res, ()) else "C", "O": "OA",
                        "S": "SA" if conn == 2 else "S"}[e])
        elif e == "N":
            if res in _HIS and name in ("ND1", "NE2"):
                acceptor = n_h == 0
            elif name == "N" and any(atom_names[j].strip().upper() == "C" for j in nbrs[i]):
                acceptor = False                                  # peptide bond
            elif name == "N" or (res in ("LYS", "LYN") and name == "NZ"):
                acceptor = conn < 4                               # neutral amine
            else:
                acceptor = res not in ("ARG", "ASN", "GLN", "TRP") and n_h == 0 and conn <= 2
            out.append("NA" if acceptor else "N")
        else:
            _cov(e)
            out.append(e)
    return out


def write_receptor_pdbqt(ad_types, positions, atom_names=None, residue_names=None, residue_numbers=None,
                         chain_ids=None) -> str:
    """Rigid-receptor PDBQT text (charges 0: Vina ignores them); None atoms are skipped.

    ``ad_types`` (N,) str or None; ``positions`` (N, 3) Å, written with 3 decimals (give
    ``numpy.round(positions, 3)`` to :class:`VinaScore` to score exactly what Vina reads);
    names, residue numbers and chain ids are optional (N,) sequences.
    """
    n = len(ad_types)
    names = atom_names or [t[0] if t else "X" for t in ad_types]
    res, chains = residue_names or ["UNK"] * n, chain_ids or ["A"] * n
    nums = [1] * n if residue_numbers is None else residue_numbers
    lines = []
    for i in (i for i, t in enumerate(ad_types) if t is not None):
        name = names[i][:4] if len(names[i]) >= 4 else " " + names[i]
        x, y, z = np.asarray(positions[i], dtype=np.float64)
        lines.append(f"ATOM  {(len(lines) + 1) % 100000:5d} {name:<4s} {res[i][:3]:>3s} "
                     f"{chains[i][:1] or 'A':1s}{int(nums[i]) % 10000:4d}    "
                     f"{x:8.3f}{y:8.3f}{z:8.3f}  1.00  0.00    {0.0:+6.3f} {ad_types[i]:<2s}")
    return "\n".join(lines) + "\n"


@dataclass
class VinaLigand:
    """Vina's view of an RDKit ligand; all indices are RDKit atom indices.

    Attributes
    ----------
    ad_types : list of str or None, length n_atoms (None: merged non-polar H)
    xs : numpy.ndarray, shape (n_atoms,), int; -1 for atoms without energy (H)
    intra_pairs : numpy.ndarray, shape (P, 2), int; Vina's intramolecular pairs
    num_tors : float; Vina's N_rot (``conf_independent_inputs::num_tors``)
    rotatable_bonds : numpy.ndarray, shape (T, 2), int; (parent side, child side) of each branch
    pdbqt : str; meeko's PDBQT with ``REMARK INDEX MAP``, what Vina reads
    """

    ad_types: list
    xs: np.ndarray
    intra_pairs: np.ndarray
    num_tors: float
    rotatable_bonds: np.ndarray
    pdbqt: str


def _meeko_setup(mol, preparation=None):
    require_extra("ligand", "meeko", "gemmi", "rdkit")
    from meeko import MoleculePreparation

    # macrocycles stay rigid, as in digmat's pose space (ring bonds are not torsions): no glue atoms
    setups = (preparation or MoleculePreparation(rigid_macrocycles=True)).prepare(mol)
    if len(setups) != 1 or setups[0].atom_true_count != mol.GetNumAtoms():
        raise ValueError("expected one meeko setup mapping 1:1 onto the RDKit atoms")
    return setups[0]


def ligand_ad_types(mol, preparation=None) -> list:
    """AutoDock types of an RDKit ligand (explicit H, 3D) as in meeko's PDBQT.

    ``preparation``: a ``meeko.MoleculePreparation`` (default settings if None).
    Returns a list (n_atoms,) of str, None for merged non-polar H.
    """
    setup = _meeko_setup(mol, preparation)
    return [None if setup.get_is_ignore(i) else setup.get_atom_type(i) for i in range(mol.GetNumAtoms())]


def prepare_ligand(mol, preparation=None) -> VinaLigand:
    """Type an RDKit ligand (explicit H, 3D) and derive Vina's intramolecular pairs and N_rot.

    The tree (rigid bodies, root, rotatable bonds) is meeko's, i.e. the PDBQT's. As in
    ``parse_pdbqt.cpp``, two atoms are rigid relative to each other if both are fixed in the
    frame of one body: its members plus both atoms of each rotatable bond it touches (the
    parent-side atom of its own branch, the first atom of each child branch). Vina scores
    heavy-atom pairs that are not rigid and more than three bonds apart. ``N_rot`` sums, over
    heavy atoms, 0.5 per rotatable bond to a heavy atom that has more than one heavy neighbour
    (a C-OH rotor counts 0.5, a C-C rotor between two non-terminal atoms 1).
    ``preparation``: a ``meeko.MoleculePreparation`` (default settings if None).
    """
    require_extra("ligand", "meeko", "gemmi", "rdkit")
    from meeko import PDBQTWriterLegacy
    from rdkit import Chem

    setup = _meeko_setup(mol, preparation)
    n = mol.GetNumAtoms()
    ad = [None if setup.get_is_ignore(i) else setup.get_atom_type(i) for i in range(n)]
    xs = xs_types(ad, [(b.GetBeginAtomIdx(), b.GetEndAtomIdx()) for b in mol.GetBonds()
                       if ad[b.GetBeginAtomIdx()] is not None and ad[b.GetEndAtomIdx()] is not None])
    fm = setup.flexibility_model
    frame = {b: set(members) for b, members in fm["rigid_body_members"].items()}
    rot_bonds, stack, seen = [], [fm["root"]], {fm["root"]}
    while stack:
        node = stack.pop()
        for child in fm["rigid_body_graph"][node]:
            if child not in seen:
                seen.add(child)
                begin, end = fm["rigid_body_connectivity"][node, child]
                frame[child].add(begin)        # the rotor axis is fixed in both frames
                frame[node].add(end)
                rot_bonds.append((begin, end))
                stack.append(child)
    rigid = np.zeros((n, n), dtype=bool)
    for members in frame.values():
        idx = np.array(sorted(members))
        rigid[np.ix_(idx, idx)] = True
    heavy = np.flatnonzero(xs >= 0)
    sub = np.ix_(heavy, heavy)
    i, j = np.nonzero(np.triu(~rigid[sub] & (Chem.GetDistanceMatrix(mol)[sub] > 3), 1))
    is_h = [t is None or t in ("H", "HD") for t in ad]
    deg = [sum(not is_h[x.GetIdx()] for x in a.GetNeighbors()) for a in mol.GetAtoms()]
    num_tors = sum(0.5 * (deg[a] > 1) + 0.5 * (deg[b] > 1) for a, b in rot_bonds if not (is_h[a] or is_h[b]))
    pdbqt, ok, err = PDBQTWriterLegacy.write_string(setup, add_index_map=True)
    if not ok:
        raise ValueError(f"meeko could not write the ligand PDBQT: {err}")
    return VinaLigand(ad, xs, np.stack([heavy[i], heavy[j]], 1).astype(np.int64), float(num_tors),
                      np.array(rot_bonds, dtype=np.int64).reshape(-1, 2), pdbqt)


def ligand_positions_from_pdbqt(pdbqt: str, template_positions) -> np.ndarray:
    """Coordinates (n_atoms, 3) Å in RDKit order from one meeko/Vina PDBQT model.

    Uses the ``REMARK INDEX MAP`` of :func:`prepare_ligand` (Vina copies REMARKs into its
    docked poses). Atoms absent from the PDBQT (merged non-polar H) keep
    ``template_positions`` (n_atoms, 3); they do not enter the Vina score.
    """
    out = np.array(template_positions, dtype=np.float64, copy=True)
    serial_to_mol, coords = {}, {}
    for line in pdbqt.splitlines():
        if line.startswith("REMARK INDEX MAP"):
            v = [int(x) for x in line.split()[3:]]
            serial_to_mol.update({s: m - 1 for m, s in zip(v[::2], v[1::2])})
        elif line.startswith(("ATOM", "HETATM")):
            coords[int(line[6:11])] = [float(line[30:38]), float(line[38:46]), float(line[46:54])]
    if not serial_to_mol:
        raise ValueError("PDBQT has no 'REMARK INDEX MAP' lines")
    for s, m in serial_to_mol.items():
        out[m] = coords[s]
    return out
