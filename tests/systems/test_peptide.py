"""PeptideSystem: torsion states round-trip, exact geometry, descriptors, refusals."""

import math

import numpy as np
import pytest
import torch

pytest.importorskip("openmm", reason="needs the protein extra (openmm)")
pytest.importorskip("rdkit", reason="needs the protein extra (rdkit)")

from digmat.protein import build_peptide  # noqa: E402
from digmat.protein.torsions import bond_graph  # noqa: E402
from digmat.systems.peptide import RESIDUE_FEATURES, TORSION_KINDS, PeptideSystem  # noqa: E402


@pytest.fixture(scope="module")
def lysine():
    return PeptideSystem.from_sequence("K")


def test_states_round_trip_and_geometry_is_the_templates(lysine):
    states = lysine.space.sample_prior(5, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    conformations = lysine.to_atoms(states)
    back = lysine.to_state(conformations)
    torch.testing.assert_close(lysine.space.difference(back, states), torch.zeros_like(states), atol=1e-9, rtol=0)
    template = lysine.template
    for atoms in conformations:
        for i, nbrs in enumerate(bond_graph(template)):
            for j in nbrs:
                assert atoms.get_distance(i, j) == pytest.approx(template.get_distance(i, j), abs=1e-9)
                for k in bond_graph(template)[j]:
                    if k != i:
                        assert atoms.get_angle(i, j, k) == pytest.approx(template.get_angle(i, j, k), abs=1e-7)


def test_chirality_is_kept_by_every_state(lysine):
    """The improper N–C–CA–CB dihedral's sign (L) never flips: only torsions are set."""
    names = list(lysine.template.arrays["atomtypes"])
    res = lysine.template.arrays["residuenames"]
    idx = {n: i for i, n in enumerate(names) if res[i] == "LYS"}
    quad = (idx["N"], idx["C"], idx["CA"], idx["CB"])
    sign = np.sign(lysine.template.get_dihedral(*quad) - 180)
    states = lysine.space.sample_prior(20, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    for atoms in lysine.to_atoms(states):
        assert np.sign(atoms.get_dihedral(*quad) - 180) == sign


def test_descriptors_and_token_features(lysine):
    d = dict(zip(RESIDUE_FEATURES, lysine.descriptors[2]))
    assert (d["side_C"], d["side_N"], d["n_chi"], d["charge"], d["polar_H"]) == (4, 1, 4, 1, 3)
    feats = lysine.token_features()
    assert feats.shape == (lysine.dim, PeptideSystem.num_token_features())
    assert feats[:, : len(TORSION_KINDS)].argmax(1).tolist() == [0, 1, 2, 3, 4, 5]
    glycine = PeptideSystem.from_sequence("G")
    g = dict(zip(RESIDUE_FEATURES, glycine.descriptors[2]))
    assert g["is_gly"] == 1 and g["side_C"] == 0
    phe = dict(zip(RESIDUE_FEATURES, PeptideSystem.from_sequence("F").descriptors[2]))
    assert (phe["ring_atoms"], phe["aromatic_ring"], phe["side_C"]) == (6, 1, 7)


def test_from_degrees_matches_to_state(lysine):
    degrees = np.degrees(lysine.torsion_angles(lysine.template.positions))
    torch.testing.assert_close(lysine.states_from_degrees(degrees[None]), lysine.to_state(lysine.template))
    assert lysine.space.periods(torch.zeros(1))[0] == pytest.approx(2 * math.pi)


def test_other_peptides_are_refused(lysine):
    with pytest.raises(ValueError, match="is not PeptideSystem"):
        lysine.to_state(build_peptide("A", minimize=False))


def test_steric_profiles_agree_with_the_clash_criterion():
    """A clearance below 0.6 at an angle is exactly a clash of that conformation (clash_mask)."""
    from digmat.protein.torsions import set_dihedrals
    from digmat.systems.peptide import CANONICAL_BACKBONES
    from digmat.tasks.peptide_sampling import clash_mask

    system = PeptideSystem.from_sequence("N")
    profiles = system.steric_profiles(36)
    assert profiles.shape == (system.dim, len(CANONICAL_BACKBONES), 36)
    assert np.all((profiles > 0) & (profiles <= 1.5))
    backbone = [d for d in system.torsions if d.name in ("phi", "psi")]
    for b, angles in enumerate(CANONICAL_BACKBONES):
        base = set_dihedrals(system.template, backbone, list(angles))
        for t, d in enumerate(system.torsions):
            turned = np.stack([set_dihedrals(base, [d], [10.0 * m]).positions for m in range(36)])
            np.testing.assert_array_equal(clash_mask(system.template, turned), profiles[t, b] < 0.6)
    # Asn's amide turned so that its NH2 points back at the backbone (χ2 ≈ 150–190°) is the tightest
    # turn of its χ2; Asp's carboxylate, with no hydrogens there, is not close.
    chi2 = [d.name for d in system.torsions].index("chi2")
    asp = PeptideSystem.from_sequence("D").steric_profiles(36)
    assert profiles[chi2, 0, 15:20].min() < 0.7 < asp[chi2, 0, 15:20].min()


def test_torch_decoding_and_clearance_match_to_atoms_and_clash_mask(lysine):
    from digmat.tasks.peptide_sampling import clash_mask

    states = torch.rand(48, lysine.dim, dtype=torch.float64, generator=torch.Generator().manual_seed(0)) * 2 * math.pi
    reference = np.stack([a.positions for a in lysine.to_atoms(states)])
    np.testing.assert_allclose(lysine.positions_of(states).numpy(), reference, atol=1e-9)
    clearance = lysine.clearance(states)
    assert clearance.shape == (48, lysine.dim) and float(clearance.max()) <= 1.5
    clashing = clash_mask(lysine.template, reference)
    assert 0 < clashing.sum() < 48  # random lysine states: some clash, some do not
    np.testing.assert_array_equal(clearance.min(dim=1).values.numpy() < 0.6, clashing)
    # one torsion turned from the β backbone: its clearance is its steric profile (numpy, per torsion)
    from digmat.systems.peptide import CANONICAL_BACKBONES

    base = lysine.to_state(lysine.template)[0]
    for d, name in enumerate(t.name for t in lysine.torsions):
        if name in ("phi", "psi"):
            base[d] = math.radians(CANONICAL_BACKBONES[0][0 if name == "phi" else 1])
    profiles = lysine.steric_profiles(12)
    for t in range(lysine.dim):
        turned = base.repeat(12, 1)
        turned[:, t] = torch.arange(12, dtype=torch.float64) * 2 * math.pi / 12
        np.testing.assert_allclose(lysine.clearance(turned)[:, t].numpy(), profiles[t, 0], atol=1e-9)
