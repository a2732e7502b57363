"""digmat.ligand.vina against the ``vina`` wheel's own ``Vina.score()``.

Reference values come from ``v._vina.score()`` (the unrounded C++ result; the Python
``score()`` rounds to 3 decimals). With a receptor loaded, ``score()`` sums explicit
receptor atoms (``non_cache``), not the affinity maps, so the map spacing does not matter
(0.375 Å and 1.0 Å gave identical scores; 1.0 Å is used because it is faster). Vina evaluates
each pair from a table over r² (32 points per Å², ``precalculate``); tolerances, set from
measured differences:

* ``vina_table=True`` reproduces that table: |Δ| ≤ 1e-4 kcal/mol required, ≤ 2e-14 measured.
* analytic (differentiable) function, whose difference from the table grows with the slope
  of the terms (clashes): |Δ| ≤ 0.02 kcal/mol on poses Vina scores < 0 (crystal, mildly
  perturbed, docked; measured max 0.0062), |Δ| ≤ 0.02 + 0.01 |E| on clashing poses (measured
  0.038 at inter = 6.9 kcal/mol, 0.086 at inter = 89 kcal/mol).
"""

import numpy as np
import pytest
import torch

pytest.importorskip("rdkit", reason="needs the ligand extra (rdkit)")
pytest.importorskip("meeko", reason="needs the ligand extra (meeko)")
pytest.importorskip("scipy", reason="needs scipy")

from rdkit import Chem  # noqa: E402
from rdkit.Chem import AllChem  # noqa: E402

from digmat.ligand import vina as V  # noqa: E402

BOX = (30.0, 30.0, 30.0)


def _mol3d(smiles):
    mol = Chem.AddHs(Chem.MolFromSmiles(smiles))
    AllChem.EmbedMolecule(mol, randomSeed=7)
    return mol


def _typed(smiles):
    mol = _mol3d(smiles)
    lig = V.prepare_ligand(mol)
    return {a.GetIdx(): (a.GetSymbol(), lig.ad_types[a.GetIdx()], V.XS_NAMES[lig.xs[a.GetIdx()]]
                         if lig.xs[a.GetIdx()] >= 0 else None) for a in mol.GetAtoms()}, lig


def test_xs_typing_small_molecules():
    """Hand-checked: C bonded to N/O/Cl is C_P, O-H is a donor, NA/OA are acceptors."""
    types, lig = _typed("CC(=O)O")                       # acetic acid
    assert [types[i][2] for i in range(4)] == ["C_H", "C_P", "O_A", "O_DA"]
    h_types = [t[1] for t in types.values() if t[0] == "H"]
    assert h_types.count("HD") == 1 and h_types.count(None) == 3   # CH3 hydrogens merged
    assert V.ligand_ad_types(_mol3d("CC(=O)O"))[:4] == ["C", "C", "OA", "OA"]
    assert lig.num_tors == 0.5                           # C-OH: only the O side counts

    types, _ = _typed("c1ccncc1")                        # pyridine
    assert [types[i][1:] for i in range(6)] == [("A", "C_H"), ("A", "C_H"), ("A", "C_P"),
                                                ("NA", "N_A"), ("A", "C_P"), ("A", "C_H")]
    types, _ = _typed("Clc1ccccc1")                      # chlorobenzene
    assert [types[i][2] for i in range(7)] == ["Cl_H", "C_P"] + ["C_H"] * 5
    types, _ = _typed("CC(=O)NC")                        # N-methylacetamide: amide N is a donor
    assert types[3][1:] == ("N", "N_D") and types[2][2] == "O_A"
    types, lig = _typed("c1ccc(cc1)CCc1ccccc1")           # bibenzyl: three rotors
    assert lig.num_tors == 3.0 and len(lig.rotatable_bonds) == 3
    assert len(lig.intra_pairs) > 0 and (np.abs(np.diff(lig.intra_pairs, axis=1)) > 0).all()


def test_vina_bonds_and_receptor_rules():
    """Distance bonds with Vina's 1.1 x covalent rule; metal donor; H typing."""
    ad = ["N", "HD", "C", "OA", "Zn"]
    pos = [[0, 0, 0], [1.01, 0, 0], [-1.47, 0, 0], [-2.2, 1.2, 0], [3.5, 0, 0]]
    assert V.vina_bonds(ad, pos).tolist() == [[0, 1], [0, 2], [2, 3]]
    xs = V.xs_types(ad, V.vina_bonds(ad, pos))
    assert [V.XS_NAMES[t] if t >= 0 else None for t in xs] == ["N_D", None, "C_P", "O_A", "Met_D"]
    el = ["N", "H", "C", "H", "N", "C"]
    names = ["NE2", "HE2", "CE1", "HE1", "ND1", "CG"]
    pos = [[0, 0, 0], [0, 1.01, 0], [1.1, -0.7, 0], [2.0, -0.2, 0], [0.8, -2.0, 0], [-0.5, -2.3, 0]]
    assert V.receptor_ad_types(el, names, ["HIS"] * 6, pos) == ["N", "HD", "A", None, "NA", "A"]


def _receptor(pdb_path):
    from openmm import app, unit

    pdb = app.PDBFile(str(pdb_path))
    modeller = app.Modeller(pdb.topology, pdb.positions)
    modeller.delete([r for r in modeller.topology.residues() if r.name == "HOH"])
    modeller.addHydrogens(pH=7.0)
    atoms = list(modeller.topology.atoms())
    pos = np.asarray(modeller.positions.value_in_unit(unit.angstrom))
    return ([a.element.symbol for a in atoms], [a.name for a in atoms], [a.residue.name for a in atoms],
            [a.residue.index + 1 for a in atoms], [a.residue.chain.id for a in atoms], pos)


def _perturbed(mol, lig, rng, torsion_deg, rot_deg, shift):
    """Random torsions about the rotatable bonds, rotation and shift; no new Vina bonds."""
    from rdkit.Chem import rdMolTransforms
    from scipy.spatial.transform import Rotation

    topo = Chem.GetDistanceMatrix(mol)
    vina_atoms = np.array([t is not None for t in lig.ad_types])
    far = (topo > 2)[np.ix_(vina_atoms, vina_atoms)]
    while True:
        m = Chem.Mol(mol)
        conf = m.GetConformer()
        for a, b in lig.rotatable_bonds.tolist():
            na = next(n.GetIdx() for n in m.GetAtomWithIdx(a).GetNeighbors() if n.GetIdx() != b)
            nb = next(n.GetIdx() for n in m.GetAtomWithIdx(b).GetNeighbors() if n.GetIdx() != a)
            angle = rdMolTransforms.GetDihedralDeg(conf, na, a, b, nb)
            rdMolTransforms.SetDihedralDeg(conf, na, a, b, nb, angle + rng.uniform(-torsion_deg, torsion_deg))
        xyz = conf.GetPositions()
        dist = np.linalg.norm(xyz[:, None] - xyz[None], axis=-1)[np.ix_(vina_atoms, vina_atoms)]
        if (dist[far] > 2.0).all():
            break
    rot = Rotation.from_rotvec(np.deg2rad(rot_deg) * rng.uniform(-1, 1, 3) / np.sqrt(3)).as_matrix()
    c = xyz.mean(0)
    xyz = (xyz - c) @ rot.T + c + rng.uniform(-shift, shift, 3)
    for i, p in enumerate(xyz):
        conf.SetAtomPosition(i, p.tolist())
    return m


_CACHE = {}


@pytest.fixture(scope="module")
def vina_case(posebusters_case, tmp_path_factory):
    """``vina_case(code)`` -> dict with receptor, ligand, Vina object and scored poses."""
    vina = pytest.importorskip("vina", reason="needs the ligand extra (vina)")

    def build(code):
        if code in _CACHE:
            return _CACHE[code]
        protein, sdf = posebusters_case(code)
        el, names, res, resid, chain, pos = _receptor(protein)
        ad = V.receptor_ad_types(el, names, res, pos)
        rec_file = tmp_path_factory.mktemp(code) / "receptor.pdbqt"
        rec_file.write_text(V.write_receptor_pdbqt(ad, pos, names, res, resid, chain))
        mol = Chem.AddHs(Chem.MolFromMolFile(str(sdf), removeHs=False), addCoords=True)
        lig = V.prepare_ligand(mol)
        x0 = V.ligand_positions_from_pdbqt(lig.pdbqt, mol.GetConformer().GetPositions())
        center = x0[lig.xs >= 0].mean(0)
        v = vina.Vina(sf_name="vina", cpu=1, verbosity=0, seed=1)
        v.set_receptor(str(rec_file))
        v.set_ligand_from_string(lig.pdbqt)
        v.compute_vina_maps(center=center.tolist(), box_size=list(BOX), spacing=1.0)
        rng = np.random.default_rng(0)
        pdbqts = [lig.pdbqt] + [V.prepare_ligand(_perturbed(mol, lig, rng, *p)).pdbqt
                                for p in [(40, 15, 0.5), (40, 15, 0.5), (180, 180, 1.0)]]
        if code == "1uou":       # ~2 s; docked poses come back through Vina's PDBQT writer
            v.dock(exhaustiveness=2, n_poses=3)
            pdbqts += ["\n".join(line for line in model.splitlines()[1:] if not line.startswith("ENDMDL"))
                       for model in v.poses(n_poses=3).split("MODEL")[1:]]
        poses, ref = [], []
        for text in pdbqts:
            v.set_ligand_from_string(text)
            ref.append(np.asarray(v._vina.score()))
            poses.append(V.ligand_positions_from_pdbqt(text, x0))
        rec = np.round(pos, 3)        # what Vina reads from the PDBQT
        kw = dict(box_center=center, box_size=BOX)
        _CACHE[code] = dict(mol=mol, lig=lig, ad=ad, res=res, names=names, el=el, poses=np.stack(poses),
                            ref=np.stack(ref), score=V.VinaScore(rec, ad, lig, **kw),
                            table=V.VinaScore(rec, ad, lig, vina_table=True, **kw))
        return _CACHE[code]

    return build


@pytest.mark.parametrize("code", [pytest.param("1uou", marks=pytest.mark.slow), "1s3v"])  # 1uou also docks (~15 s)
def test_matches_vina_score(vina_case, code):
    case = vina_case(code)
    ref = case["ref"]                          # [total, lig_inter, ..., lig_intra (5), torsion (6)]
    x = torch.as_tensor(case["poses"])
    exact = case["table"](x)
    smooth = case["score"](x)
    for key, col in (("total", 0), ("inter", 1), ("intra", 5)):
        np.testing.assert_allclose(exact[key].numpy(), ref[:, col], rtol=0, atol=1e-4, err_msg=key)
        err = np.abs(smooth[key].numpy() - ref[:, col])
        assert (err <= 0.02 + np.where(ref[:, 0] < 0, 0.0, 0.01 * np.abs(ref[:, col]))).all(), (key, err)
    # torsion term: Vina's conf_independent = total - inter (its intra cancels in score())
    np.testing.assert_allclose(exact["total"].numpy() - exact["inter"].numpy(), ref[:, 6], atol=1e-4)
    assert ref[0, 0] < 0 and ref[:, 0].max() > 0       # crystal binds, the wild pose clashes
    # receptor typing: HIS ring N is an acceptor exactly when it carries no H
    names, res, ad = case["names"], case["res"], case["ad"]
    his_n = [i for i, (n, r) in enumerate(zip(names, res)) if r == "HIS" and n in ("ND1", "NE2")]
    assert his_n and {ad[i] for i in his_n} == {"N", "NA"}


def test_batch_chunks_gradient_and_probe(vina_case):
    case = vina_case("1s3v")
    score, lig = case["score"], case["lig"]
    x = torch.as_tensor(case["poses"]).requires_grad_(True)
    out = score(x)
    (grad,) = torch.autograd.grad(out["total"].sum() + out["intra"].sum(), x)
    single = [score(p) for p in case["poses"]]
    np.testing.assert_allclose(out["total"].detach().numpy(), [float(s["total"]) for s in single], rtol=1e-12)
    score.max_pairs, keep = 3000, score.max_pairs        # chunks of one pose
    try:
        x2 = x.detach().clone().requires_grad_(True)
        out2 = score(x2)
        (grad2,) = torch.autograd.grad(out2["total"].sum() + out2["intra"].sum(), x2)
    finally:
        score.max_pairs = keep
    torch.testing.assert_close(out2["total"], out["total"].detach(), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(grad2, grad, rtol=1e-12, atol=1e-12)
    assert (grad[:, lig.xs < 0] == 0).all()               # hydrogens carry no energy
    # probe maps: per-atom energies summed over the crystal pose = inter (no curl when all < 0)
    p0 = torch.as_tensor(case["poses"][0])
    heavy = np.flatnonzero(lig.xs >= 0)
    e = sum(float(score.probe_energy(p0[i:i + 1], int(lig.xs[i]))[0]) for i in heavy)
    assert e == pytest.approx(float(out["inter"][0].detach()), abs=1e-9)


@pytest.mark.parametrize("term", ["total", "inter+intra"])
def test_calculator_forces_are_minus_gradient(vina_case, term):
    from ase import Atoms, units

    case = vina_case("1s3v")
    mol, score = case["mol"], case["score"]
    atoms = Atoms([a.GetSymbol() for a in mol.GetAtoms()], positions=case["poses"][1])
    atoms.calc = V.VinaCalculator(score, term=term)
    forces = atoms.get_forces()
    out = score(torch.as_tensor(case["poses"][1]))
    ref = out["total"] if term == "total" else out["inter"] + out["intra"]
    assert atoms.get_potential_energy() == pytest.approx(float(ref) * units.kcal / units.mol, rel=1e-12)
    # central differences of the same energy, all displacements in one batch
    rng = np.random.default_rng(1)
    idx = rng.choice(np.flatnonzero(case["lig"].xs >= 0), 6, replace=False)
    h = 1e-5
    x = np.repeat(case["poses"][1][None], 2 * 3 * len(idx), axis=0)
    for n, (i, k, sign) in enumerate((i, k, s) for i in idx for k in range(3) for s in (1, -1)):
        x[n, i, k] += sign * h
    with torch.no_grad():
        o = score(torch.as_tensor(x))
    e = (o["total"] if term == "total" else o["inter"] + o["intra"]).numpy().reshape(len(idx), 3, 2)
    fd = -(e[..., 0] - e[..., 1]) / (2 * h) * units.kcal / units.mol
    np.testing.assert_allclose(forces[idx], fd, rtol=1e-5, atol=1e-6)
    assert np.abs(forces[case["lig"].xs < 0]).max() == 0.0


def test_macrocycles_are_rigid_and_glue_types_are_refused():
    """A 16-membered lactone: meeko's default would add glue atoms (G0/CG0); digmat keeps the ring rigid."""
    from rdkit.Chem import AllChem

    mol = Chem.AddHs(Chem.MolFromSmiles("C1CCCCCCCCCCC(=O)OCC1"))
    AllChem.EmbedMolecule(mol, randomSeed=1)
    lig = V.prepare_ligand(mol)
    assert not {t for t in lig.ad_types if t} - {"C", "OA"} and lig.num_tors == 0
    with pytest.raises(ValueError, match="glue/water type 'G0'"):
        V.xs_types(["C", "G0"], np.zeros((0, 2), int))
