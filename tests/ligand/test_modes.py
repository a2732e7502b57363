"""Binding-mode clustering on poses whose modes and populations are known by construction."""

import numpy as np
import pytest
import torch

Chem = pytest.importorskip("rdkit.Chem", reason="needs the ligand extra (rdkit)")

from digmat.ligand.modes import cluster_modes  # noqa: E402
from digmat.ligand.molecule import read_ligand  # noqa: E402
from digmat.core.so3 import exp_map  # noqa: E402
from digmat.ligand.pose import PoseSpace  # noqa: E402


def test_two_known_modes(posebusters_case):
    mol = read_ligand(posebusters_case("1of6")[1])  # tyrosine: carboxylate and ring flips are symmetries
    space = PoseSpace.from_mol(mol)
    crystal = mol.GetConformer().GetPositions()
    t0, r0, tau0 = space.coordinates(crystal)
    flip = exp_map(torch.tensor([[0.0, 0.0, np.pi]], dtype=torch.float64))
    rng = np.random.default_rng(0)
    chains, per_chain = 20, 50
    n = chains * per_chain
    truth = (rng.random(n) < 0.3).astype(int)
    chain_of = np.repeat(np.arange(chains), per_chain)
    kick = exp_map(torch.as_tensor(rng.normal(0, 0.05, (n, 3))))
    rot = kick @ torch.where(torch.as_tensor(truth, dtype=torch.bool)[:, None, None], flip @ r0, r0)
    t = t0 + torch.as_tensor(rng.normal(0, 0.2, (n, 3)))
    tau = tau0 + torch.as_tensor(rng.normal(0, 0.1, (n, space.num_torsions)))
    x = space.positions(t, rot, tau).numpy()
    e = np.where(truth == 1, -4.0, -5.0) + rng.normal(0, 0.3, n)
    # a symmetry-equivalent relabelling (swap the carboxylate O) must not change anything
    o = [a.GetIdx() for a in mol.GetAtoms() if a.GetSymbol() == "O" and a.GetNeighbors()[0].GetSymbol() == "C"
         and a.GetNeighbors()[0].GetDegree() == 3 and not a.GetNeighbors()[0].GetIsAromatic()]
    assert len(o) == 2
    x[::7, o] = x[::7, o[::-1]]
    modes = cluster_modes(space, x, e, chains=chain_of, cutoff=2.0)
    assert len(modes.populations) == 2
    assert modes.populations[0] == pytest.approx(1 - truth.mean()) and modes.populations[1] == pytest.approx(truth.mean())
    assert (modes.labels == truth).all()
    per_chain = np.array([1 - truth[chain_of == c].mean() for c in range(chains)])  # chains are the replicates
    half_width = 2.093 * per_chain.std(ddof=1) / np.sqrt(chains)  # t(0.975, 19) = 2.093
    assert modes.interval[0] == pytest.approx([per_chain.mean() - half_width, per_chain.mean() + half_width], abs=1e-3)
    assert modes.max_half_difference < 0.1
    rmsd = modes.rmsd_to(space, crystal)
    assert rmsd[0] < 0.6 < 2.0 < rmsd[1]
    rows = modes.table(space, crystal)
    assert rows[0]["mode"] == 1 and rows[0]["energy_min"] < rows[1]["energy_min"]
    assert rows[0]["energy_mean"] == pytest.approx(np.mean(np.array(e)[truth == 0]))


def test_bad_input():
    from rdkit.Chem import AllChem

    from digmat.ligand.molecule import protonate

    mol = protonate(Chem.MolFromSmiles("CCCC"))
    AllChem.EmbedMolecule(mol, randomSeed=1)
    space = PoseSpace.from_mol(mol)
    with pytest.raises(ValueError, match="one energy per pose"):
        cluster_modes(space, np.zeros((3, space.num_atoms, 3)), [0.0, 1.0])
