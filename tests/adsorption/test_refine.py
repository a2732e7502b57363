"""Calculator-verified populations: refinement of sampled sites and importance reweighting."""

from __future__ import annotations

import numpy as np
import pytest
from ase import units
from ase.build import fcc111
from ase.thermochemistry import HarmonicThermo

from digmat.adsorption import convert_ase_tags, get_adsorbate, importance_weights, place_adsorbate, refine_sites
from digmat.adsorption.refine import pick_representatives, weighted_site_probabilities
from digmat.tasks.sampling import summarise_sites
from digmat.adsorption.thermo import VIB_FLOOR


@pytest.fixture(scope="module")
def slab():
    return convert_ase_tags(fcc111("Pt", (2, 2, 3), vacuum=8.0))


def _samples(slab, counts, seed=0):
    """Pretend model samples: O near the fcc and hcp points of the first surface cell, jittered."""
    info = slab.info["adsorbate_info"]
    rng = np.random.default_rng(seed)
    out = []
    for site, n in counts.items():
        xy = np.asarray(info["sites"][site]) @ info["cell"]
        for _ in range(n):
            point = np.array([xy[0], xy[1], 0.0]) + np.append(rng.normal(0.0, 0.1, 2), 0.0)
            out.append(place_adsorbate(slab, get_adsorbate("O"), point))
    return out


def test_refined_populations_match_a_hand_computed_boltzmann(slab):
    """Two sampled sites (fcc 6 samples, hcp 2): the refined populations are the harmonic
    Boltzmann weights p ∝ g exp(−(E + F_vib)/kT), recomputed here with ASE's HarmonicThermo."""
    configs = _samples(slab, {"fcc": 6, "hcp": 2})
    binding = len(slab)
    sites, labels = summarise_sites(slab, configs, binding)
    assert sorted(s.kind for s in sites) == ["hollow-fcc", "hollow-hcp"]
    refined = refine_sites(slab, get_adsorbate("O"), configs, labels, "emt", temperature=300.0,
                           binding_index=binding, per_site=1)
    assert len(refined.representatives) == 2 and refined.discarded == 0
    kinds = {m.kind: m for m in refined.minima}
    assert set(kinds) == {"hollow-fcc", "hollow-hcp"}
    weights = {}
    for kind, m in kinds.items():
        ref = next(r for r in refined.reference.minima if r.site_kind == kind)
        modes = np.maximum(ref.vib_energies, VIB_FLOOR)  # digmat's documented floor of soft modes
        f = HarmonicThermo(modes, potentialenergy=ref.energy).get_helmholtz_energy(300.0, verbose=False)
        weights[kind] = m.multiplicity * np.exp(-f / (units.kB * 300.0))
        assert m.free_energy == pytest.approx(f, abs=1e-6)
    total = sum(weights.values())
    for s in sites:
        assert refined.site_probabilities[s.label] == pytest.approx(weights[s.kind] / total, abs=1e-6)
        assert s.label in next(m for m in refined.minima if m.kind == s.kind).from_sites
    assert sum(refined.site_probabilities.values()) == pytest.approx(1.0)
    # the model's shares (0.75 / 0.25) are not what physics says for EMT's near-degenerate hollows
    assert abs(refined.site_probabilities[sites[0].label] - sites[0].probability) > 0.1
    assert refined.calls > 0 and refined.to_dict()["calls"] == refined.calls


def test_representatives_follow_the_density(slab):
    labels = [0, 0, 0, 1, 1, 2]
    assert pick_representatives(labels, 2) == [0, 2, 3, 4, 5]
    assert pick_representatives(labels, 1, log_density=[1.0, 3.0, 2.0, -1.0, 0.5, 0.0]) == [1, 4, 5]
    distance = [0.4, 0.1, 0.3, 0.2, 0.05, 0.0]  # Å from the site point: nearest first
    assert pick_representatives(labels, 2, distance=distance) == [1, 2, 4, 3, 5]
    assert pick_representatives(labels, 1, log_density=[1.0, 3.0, 2.0, -1.0, 0.5, 0.0], distance=distance) == [1, 4, 5]
    with pytest.raises(ValueError, match="per_site"):
        pick_representatives(labels, 0)


def test_importance_weights_recover_an_analytic_boltzmann_distribution():
    """Samples from N(0, 1) reweighted to exp(−E/kT) with E = ½ κ (x − μ)²: the target is
    N(μ, kT/κ), so the weighted mean and variance are known."""
    rng = np.random.default_rng(1)
    x = rng.normal(0.0, 1.0, 200_000)
    log_p = -0.5 * x**2 - 0.5 * np.log(2 * np.pi)
    temperature, mu = 300.0, 0.3
    kt = units.kB * temperature
    kappa = kt / 0.8**2  # target standard deviation 0.8
    w, ess = importance_weights(log_p, 0.5 * kappa * (x - mu) ** 2, temperature)
    assert w.sum() == pytest.approx(1.0) and (w >= 0).all()
    mean = np.sum(w * x)
    assert mean == pytest.approx(mu, abs=0.01)
    assert np.sum(w * (x - mean) ** 2) == pytest.approx(0.64, abs=0.01)
    assert 0.5 * len(x) < ess < len(x)
    # samples already from the target: uniform weights, ESS = n
    w, ess = importance_weights(np.zeros(10), np.zeros(10), temperature)
    assert np.allclose(w, 0.1) and ess == pytest.approx(10.0)
    assert weighted_site_probabilities([0, 1, 1], [0.5, 0.25, 0.25], 3).tolist() == [0.5, 0.5, 0.0]
    with pytest.raises(ValueError, match="finite"):
        importance_weights([np.nan, 0.0], [0.0, 0.0], temperature)
    with pytest.raises(ValueError, match="one length"):
        importance_weights([0.0], [0.0, 1.0], temperature)


def test_refine_takes_configs_and_the_former_flat_keywords(slab, monkeypatch):
    """refine_sites passes one SearchConfig (its temperature) and ExecutionConfig to the search;
    the flat keywords it took before the configs (fmax=, workers=, ...) still build them."""
    from digmat.adsorption import ExecutionConfig, SearchConfig, refine

    seen = []

    def fake_search(slab, adsorbate, calculator, config, *, execution, **kwargs):
        seen.append((config, execution))
        raise RuntimeError("stop")  # the arguments are all this test needs

    monkeypatch.setattr(refine, "reference_search", fake_search)
    configs = _samples(slab, {"fcc": 2})
    call = {"slab": slab, "adsorbate": get_adsorbate("O"), "configurations": configs, "labels": [0, 0],
            "calculator": "emt", "temperature": 450.0, "binding_index": len(slab)}
    for kwargs in ({"config": SearchConfig(fmax=0.1, max_steps=50), "execution": ExecutionConfig(workers=2)},
                   {"fmax": 0.1, "max_steps": 50, "workers": 2}):
        with pytest.raises(RuntimeError, match="stop"):
            refine_sites(**call, **kwargs)
    assert seen[0] == seen[1] == (SearchConfig(temperatures=(450.0,), fmax=0.1, max_steps=50), ExecutionConfig(workers=2))
    with pytest.raises(TypeError, match="temperature="):
        refine_sites(**call, temperatures=(300.0,))
    with pytest.raises(TypeError, match="fmx"):
        refine_sites(**call, fmx=0.1)
    with pytest.raises(ValueError, match="fmax"):
        refine_sites(**call, fmax=0.0)


def test_refine_relaxes_the_samples_nearest_their_site_point(slab, monkeypatch):
    """Without log-densities each site is represented by its most central samples: the one
    placed exactly on the fcc point, not the displaced ones (distances by SiteAssigner)."""
    from digmat.adsorption import refine as refine_module

    configs = _samples(slab, {"fcc": 3})
    info = slab.info["adsorbate_info"]
    xy = np.asarray(info["sites"]["fcc"]) @ info["cell"]
    configs.insert(2, place_adsorbate(slab, get_adsorbate("O"), np.array([xy[0], xy[1], 0.0])))
    seen = {}

    def search(slab_, adsorbate, calculator, config, *, placements, **kwargs):
        seen["placements"] = placements
        raise RuntimeError("stop")

    monkeypatch.setattr(refine_module, "reference_search", search)
    with pytest.raises(RuntimeError, match="stop"):
        refine_sites(slab, get_adsorbate("O"), configs, [0] * 4, "emt", temperature=300.0, binding_index=len(slab), per_site=1)
    (only,) = seen["placements"]
    assert only is configs[2]
