"""Local minimisation of poses: finds an analytic minimum exactly, keeps the geometry, never climbs,
and turns Vina's soft 300 K contacts into poses PoseBusters accepts."""

from pathlib import Path

import numpy as np
import pytest
import torch

Chem = pytest.importorskip("rdkit.Chem", reason="needs the ligand extra (rdkit)")

from rdkit.Chem import AllChem  # noqa: E402

from digmat.core.so3 import exp_map, random_rotations  # noqa: E402
from digmat.ligand.minimize import minimize_poses, pose_shift  # noqa: E402
from digmat.ligand.molecule import protonate  # noqa: E402
from digmat.ligand.pose import PoseSpace  # noqa: E402

REFERENCES = Path(__file__).resolve().parents[2] / "data" / "ligands"


def _space(smiles="OC(=O)CCc1ccc(OCC)cc1"):
    mol = protonate(Chem.AddHs(Chem.MolFromSmiles(smiles)))
    AllChem.EmbedMolecule(mol, randomSeed=3)
    return PoseSpace.from_mol(mol), mol


def _bond_lengths(mol, x):
    pairs = np.array([(b.GetBeginAtomIdx(), b.GetEndAtomIdx()) for b in mol.GetBonds()])
    return np.linalg.norm(x[:, pairs[:, 0]] - x[:, pairs[:, 1]], axis=-1)


def _target_and_starts(space, num, seed=0):
    g = torch.Generator().manual_seed(seed)
    d = torch.float64
    t = torch.tensor([[1.0, -2.0, 0.5]], dtype=d)
    rot = random_rotations(1, g, dtype=d)
    tau = (torch.rand(1, space.num_torsions, generator=g, dtype=d) * 2 - 1) * np.pi
    starts = (t + 0.5 * torch.randn(num, 3, generator=g, dtype=d),
              exp_map(0.3 * torch.randn(num, 3, generator=g, dtype=d)) @ rot,
              tau + 0.4 * torch.randn(num, space.num_torsions, generator=g, dtype=d))
    return space.positions(t, rot, tau), starts


def test_finds_the_analytic_minimum_and_keeps_the_geometry():
    space, mol = _space()
    assert space.num_torsions >= 3
    target, starts = _target_and_starts(space, 8)

    def energy(x):  # harmonic pull of every atom to the target pose: its only minimum is the target
        return ((x - target) ** 2).sum((-1, -2))

    out = minimize_poses(space, energy, *starts, max_iterations=500, gradient_tolerance=1e-6, energy_tolerance=0.0)
    x = space.positions(out.t, out.rotation, out.tau)
    assert out.converged.all()
    assert float((x - target).norm(dim=-1).max()) < 1e-4
    assert float(out.energy.max()) < 1e-8 < float(out.initial_energy.min())
    # bonds are the template's exactly, whatever the pose
    lengths = _bond_lengths(mol, x.numpy())
    np.testing.assert_allclose(lengths, np.broadcast_to(_bond_lengths(mol, space.template[None]), lengths.shape), atol=1e-10)
    assert out.evaluations == 8 + int(out.iterations.sum())


def test_never_climbs_on_a_kinked_energy_and_stops():
    space, _ = _space()
    target, starts = _target_and_starts(space, 16, seed=1)

    def energy(x):  # with |.| terms the minimum sits on a kink, where the gradient never vanishes
        return 0.1 * (x - target).abs().sum((-1, -2)) + ((x - target) ** 2).sum((-1, -2))

    out = minimize_poses(space, energy, *starts, max_iterations=300)
    assert (out.energy <= out.initial_energy).all()
    assert float(out.energy.max()) < 0.02 * float(out.initial_energy.min())
    # zig-zagging into the kink costs iterations; a step that gains < energy_tolerance stops a pose
    early = minimize_poses(space, energy, *starts, max_iterations=300, energy_tolerance=1e-2)
    assert early.converged.all() and int(early.iterations.max()) < 300
    assert (early.energy <= early.initial_energy).all() and (early.energy >= out.energy - 0.5).all()
    none = minimize_poses(space, energy, *starts, max_iterations=0)
    assert torch.equal(none.t, starts[0]) and none.evaluations == 16


def test_quenched_reference_poses_pass_posebusters(pocket_1uou, posebusters_case):
    """Boltzmann samples of Vina at 300 K near the crystal pose of 1uou make N/O···O contacts of
    2.0-2.3 Å (below PoseBusters' 0.75 of the van der Waals sum) and, since Vina does not see
    hydrogens, H···H contacts under 1 Å; their minima under Vina + a hard core (StericCore) make
    neither, by PoseBusters' own checks."""
    pytest.importorskip("meeko", reason="needs the ligand extra (meeko)")
    from posebusters.modules.energy_ratio import check_energy_ratio
    from posebusters.modules.intermolecular_distance import check_intermolecular_distance
    from posebusters.tools.loading import safe_load_mol

    from digmat.ligand.checks import mols_at
    from digmat.ligand.energy import StericCore, vina_scorer

    pocket, mol = pocket_1uou
    protein, _ = posebusters_case("1uou")
    space = PoseSpace.from_mol(mol)
    crystal = mol.GetConformer().GetPositions()
    center = crystal[space.heavy].mean(0)
    data = np.load(REFERENCES / "1uou" / "samples.npz")
    t, rot, tau = (torch.as_tensor(data[k].reshape(-1, *data[k].shape[2:])) for k in ("t", "rotation", "tau"))
    x = space.positions(t, rot, tau)
    near = np.flatnonzero(space.rmsd(x.numpy(), crystal[None])[:, 0] < 2.0)[::3][:80]
    prot = safe_load_mol(str(protein))

    def judged(positions):  # (clash with the protein, internal energy too high) per pose
        mols = mols_at(mol, positions)
        inter = [check_intermolecular_distance(m, prot)["results"]["no_clashes"] for m in mols]
        intra = [check_energy_ratio(m, threshold_energy_ratio=100.0, ensemble_number_conformations=50)
                 ["results"]["energy_ratio_passes"] for m in mols]
        return ~np.array(inter, bool), ~np.array(intra, bool)

    clash, strained = judged(x[near].numpy())
    assert clash.sum() >= 3 and strained.sum() >= 1, "the 300 K reference has soft contacts to remove"
    # the per-pose screen is PoseBusters' own criterion: the same smallest relative distance
    ratio = StericCore(mol, pocket.atoms).contact_ratio(x[near]).numpy()
    theirs = [check_intermolecular_distance(m, prot)["results"]["most_extreme_relative_distance"] for m in mols_at(mol, x[near].numpy()[:12])]
    np.testing.assert_allclose(ratio[:12], theirs, atol=1e-3)
    np.testing.assert_array_equal(ratio < 0.75, clash)
    bad = near[clash | strained][:10]
    extent = float(np.linalg.norm(space.template[space.heavy], axis=1).max())
    scorer = vina_scorer(pocket, mol, center, 6.0 + extent + 0.5)
    contacts = StericCore(mol, pocket.atoms)

    def energy(positions):
        parts = scorer(positions)
        return parts["inter"] + parts["intra"] + contacts(positions)

    out = minimize_poses(space, energy, t[bad], rot[bad], tau[bad], max_iterations=500)
    after = space.positions(out.t, out.rotation, out.tau).numpy()
    clash, strained = judged(after)
    assert not clash.any() and not strained.any()
    assert (out.energy < out.initial_energy).all()
    shift = pose_shift(space, x[bad].numpy(), after)  # a local move: the minimum of the pose's own basin
    assert np.median(shift) < 1.5 and shift.max() < 2.5


def test_steric_core_by_hand_and_on_a_pentane_torsion_scan():
    from digmat.ligand.energy import StericCore

    space, mol = _space("CCCCC")
    core = StericCore(mol, scale=0.8, weight=30.0)
    bonds = Chem.GetDistanceMatrix(mol)
    radius = np.array([Chem.GetPeriodicTable().GetRvdw(a.GetAtomicNum()) for a in mol.GetAtoms()])
    i, j = core.pairs.T.numpy()
    assert len(i) == int(np.triu(bonds >= 4).sum()) > 0  # every pair 4+ bonds apart (none close in the template)
    np.testing.assert_allclose(core.pair_core.numpy(), 0.8 * (radius[i] + radius[j]))
    # one pair alone, by hand: w (0.8 (R_i + R_j) - r)^2 inside the core, nothing beyond
    far = torch.zeros(1, mol.GetNumAtoms(), 3, dtype=torch.float64)
    far[0, :, 0] = torch.arange(mol.GetNumAtoms(), dtype=torch.float64) * 100.0
    d0 = 0.8 * (radius[i[0]] + radius[j[0]])
    for r, expected in ((0.9, 30.0 * (d0 - 0.9) ** 2), (d0 - 0.1, 30.0 * 0.1 ** 2), (d0 + 0.1, 0.0)):
        pos = far.clone()
        pos[0, j[0]] = pos[0, i[0]] + torch.tensor([r, 0.0, 0.0], dtype=torch.float64)
        assert float(core(pos)) == pytest.approx(expected, abs=1e-12)
    # a torsion scan of pentane: the staggered conformers cost nothing, the syn-pentane H···H clash does
    g = torch.Generator().manual_seed(0)
    tau = (torch.rand(400, space.num_torsions, generator=g, dtype=torch.float64) * 2 - 1) * np.pi
    x = space.positions(torch.zeros(400, 3, dtype=torch.float64), torch.eye(3, dtype=torch.float64).expand(400, 3, 3), tau)
    e = core(x)
    ratio = ((x[:, i] - x[:, j]).norm(dim=-1) / core.pair_core).min(-1).values
    assert (e[ratio >= 1] == 0).all() and (e[ratio < 1] > 0).all() and bool((ratio < 0.9).any())
    staggered = space.positions(torch.zeros(1, 3, dtype=torch.float64), torch.eye(3, dtype=torch.float64)[None],
                                torch.full((1, space.num_torsions), np.pi, dtype=torch.float64))
    assert float(core(staggered)) == 0.0


def test_steric_core_leaves_out_pairs_the_template_holds_and_scores_pocket_contacts():
    from ase import Atoms

    from digmat.ligand.energy import StericCore

    mol = Chem.AddHs(Chem.MolFromSmiles("c1ccc2ccccc2c1"))  # naphthalene: rigid, peri H···H 2.5 Å
    AllChem.EmbedMolecule(mol, randomSeed=1)
    x = torch.as_tensor(mol.GetConformer().GetPositions())[None]
    strict = StericCore(mol, scale=1.2)  # a core wider than the peri contact: those pairs are left out
    assert float(strict(x)) == 0.0 and len(strict.pairs) < len(StericCore(mol, scale=0.1).pairs)
    # a pocket: one oxygen 2.0 Å from a carbon (core 0.8 (1.70 + 1.55) = 2.6 Å), one hydrogen and one far atom ignored
    c = x[0, 0].numpy()
    away = c + 2.0 * (c - x[0].numpy().mean(0)) / np.linalg.norm(c - x[0].numpy().mean(0))
    pocket = Atoms("OHO", positions=[away, away + [0.1, 0.0, 0.0], away + 50.0])
    core = StericCore(mol, pocket, center=x[0].numpy().mean(0), reach=20.0)
    assert len(core.pocket) == 1
    d = np.linalg.norm(x[0].numpy()[[a.GetIdx() for a in mol.GetAtoms() if a.GetAtomicNum() > 1]] - away, axis=1)
    expected = 30.0 * (np.clip(0.8 * (1.70 + 1.55) - d, 0, None) ** 2).sum()
    assert float(core(x)) == pytest.approx(expected, rel=1e-12) and expected > 30.0 * 0.6 ** 2 * 0.99
