"""recipes/bench_adsorption.py: its distance metrics against hand-made displacements, and a smoke run."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from digmat.adsorption import ReferenceResult, symmetry_images
from digmat.checkpoint import save_checkpoint
from digmat.models import AdsorptionModelConfig, AdsorptionScoreModel
from digmat.systems import AdsorbateSystem

from ..toy_models import tiny_adsorption_network

ROOT = Path(__file__).resolve().parents[2]
RESULT = ROOT / "data" / "corpus" / "results" / "Pt-111-OH.json"


@pytest.fixture(scope="module")
def bench(load_recipe):
    return load_recipe("bench_adsorption")


def test_offsets_are_lattice_and_symmetry_aware(bench):
    result = ReferenceResult.from_json(RESULT)
    system = AdsorbateSystem(result.slab, result.adsorbate)
    m = result.minima[0].atoms
    y = system.to_state(m).numpy()
    # the same minimum moved by a lattice vector, by a slab symmetry, and displaced by a known vector
    moved = m.copy()
    moved.positions[moved.get_tags() == 2] += 2 * m.cell[0] - m.cell[1]
    images = [op.apply(m, result.slab) for op in symmetry_images(result.slab)]
    shifted = m.copy()
    shift = np.array([0.3, -0.4, 0.0])  # 0.5 Å in-plane, every adsorbate atom
    shifted.positions[shifted.get_tags() == 2] += shift
    x = system.to_state([moved, shifted]).numpy()
    d_in, rmsd = bench.adsorbate_offsets(system, x, y)
    assert d_in[0, 0] == pytest.approx(0, abs=1e-6) and rmsd[0, 0] == pytest.approx(0, abs=1e-6)
    assert d_in[1, 0] == pytest.approx(0.5, abs=1e-6) and rmsd[1, 0] == pytest.approx(0.5, abs=1e-6)
    xi = system.to_state(images).numpy()
    d_img, _ = bench.adsorbate_offsets(system, xi, y)
    assert len(images) >= 6 and (d_img[:, 0] > 0.5).sum() >= 1  # images are distinct sites in the cell...
    d_self, r_self = bench.adsorbate_offsets(system, xi, xi)
    assert np.allclose(np.diag(r_self), 0, atol=1e-6)  # ...and each matches itself


def test_smoke_run_prints_every_figure(bench, tmp_path, monkeypatch, capsys):
    torch.manual_seed(0)
    config = AdsorptionModelConfig(network=tiny_adsorption_network(), network_depth=3.0)
    model = tmp_path / "tiny.pt"
    save_checkpoint(model, config=config.to_dict(), state_dict=AdsorptionScoreModel(config).state_dict(), metadata={"note": "untrained"})
    monkeypatch.setattr(sys, "argv", ["bench", str(RESULT), "--model", str(model), "-n", "6", "--calculator", "emt", "--short-steps", "1",
                                               "--refine", "--refine-per-site", "1", "--reweight",
                                               "--profile", "0.2", "0.6", "--switch", "0.3", "--oracle-pool", "64"])
    monkeypatch.setattr(bench, "_relax", lambda atoms, calc, steps, fmax=0.05: (atoms, float(len(atoms)), 1))  # no BFGS: I/O only
    assert bench.main() == 0
    out = json.loads(capsys.readouterr().out)
    s = out["summary"]
    assert s["systems"] == 1 and out["machine"]["cpus"] >= 1
    assert (out["machine"]["sampler"], out["machine"]["steps"]) == ("ode", 25)  # the SamplerConfig used, not "default"
    for key in ("coverage_1200K_mean", "tv_300K_mean", "tv_1200K_mean", "tv_site_300K_mean", "tv_site_1200K_mean", "rmsd_raw_median", "rmsd_relaxed_median", "success_at_5",
                "success_at_1", "anomaly_rate", "sampling_seconds_median", "refine_calls_ratio_median", "reweight_ess_median",
                "tv_site_kind_300K_vs_minima_mean", "floor_tv_site_kind_300K_vs_minima_mean", "tv_300K_noise_mean", "reweight_tv_300K_vs_minima_mean"):
        assert s[key] is not None, key
    system = out["per_system"][0]
    assert system["refine_calls"] > 0 and 1.0 <= system["reweight_ess"] <= 6.0 and system["reweight_calls"] == 6
    assert s["success_at_1"] <= s["success_at_5"]
    profile = system["profile_300K"]
    assert [row["t"] for row in profile["denoising"]] == [0.2, 0.6]
    assert set(profile["tv_site_kind_oracle_high"]) == {"0.3"} and 0 <= s["profile_tv_site_kind_300K_mean"]["tv_site_kind_oracle"] <= 1
    assert 0 <= s["tv_300K_mean"] <= 1 and 0 <= s["coverage_1200K_mean"] <= 1


def test_bad_sampler_steps_are_refused_before_any_work(bench, monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["bench", str(RESULT), "--sampler", "ode", "--steps", "1"])
    monkeypatch.setattr(bench, "_start_worker", lambda *a, **k: pytest.fail("no model may be loaded"))
    with pytest.raises(SystemExit) as info:
        bench.main()
    assert info.value.code == 2 and "steps >= 2" in capsys.readouterr().err


def test_unknown_calculator_is_refused_before_any_work(bench, monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["bench", str(RESULT), "--calculator", "none"])
    monkeypatch.setattr(bench, "_start_worker", lambda *a, **k: pytest.fail("no model may be loaded"))
    with pytest.raises(SystemExit) as info:
        bench.main()
    assert info.value.code == 2 and "unknown calculator 'none'" in capsys.readouterr().err


def test_tv_per_minimum_by_hand(bench):
    assigned = np.array([0, 0, 1, -1])
    p_ref = np.array([0.5, 0.5, 0.0])
    # uniform weights: p_hat = (0.5, 0.25), unassigned 0.25 -> TV = 0.5 (0 + 0.25 + 0.25) = 0.25
    assert bench.tv_per_minimum(assigned, np.full(4, 0.25), p_ref, [0, 1, 2]) == pytest.approx(0.25)
    assert bench.tv_per_minimum(assigned, np.array([0.25, 0.25, 0.5, 0.0]), p_ref, [0, 1, 2]) == pytest.approx(0.0)


def test_tv_per_site_merges_minima_of_one_site(bench):
    """Samples all at minimum 0 against a reference split 50/50 between minimum 0 and a copy
    0.2 Å away in the same site: per site TV 0 (per minimum it would be 0.5); against a
    reference at another site, TV 1."""
    result = ReferenceResult.from_json(RESULT)
    system = AdsorbateSystem(result.slab, result.adsorbate)
    binding = len(result.slab) + system.anchor
    m0 = result.minima[0].atoms
    near = m0.copy()
    near.positions[near.get_tags() == 2] += [0.2, 0.0, 0.0]
    samples = [m0.copy() for _ in range(4)]
    tv, table = bench.tv_per_site(result.slab, samples, [m0, near], np.array([0.5, 0.5]), binding)
    assert tv == pytest.approx(0.0) and len(table) == 1
    other = next(m.atoms for m in result.minima if m.site_kind != result.minima[0].site_kind)
    tv, table = bench.tv_per_site(result.slab, samples, [other], np.array([1.0]), binding)
    assert tv == pytest.approx(1.0) and sorted(v for pair in table.values() for v in pair) == [0.0, 0.0, 1.0, 1.0]


def test_distribution_by_hand(bench):
    assert bench.distribution([0, 0, 1, -1]) == {0: 0.5, 1: 0.25, -1: 0.25}
    assert bench.distribution(["a", "b"], np.array([0.75, 0.25])) == {"a": 0.75, "b": 0.25}


def test_reference_draws_score_zero_where_minima_labels_do_not(bench):
    """Exact reference draws of H on Ir(111) at 300 K: two independent draws agree (TV per kind
    and per minimum within sampling noise), while the earlier comparison with the minima's stored
    kinds gives the same exact draws a floor of > 0.15 (the bridge basin's thermal spread
    crosses the site assigner's boundaries)."""
    from digmat.tasks.sampling import total_variation

    result = ReferenceResult.from_json(ROOT / "data" / "corpus" / "results" / "Ir-111-H.json")
    usable = [i for i, m in enumerate(result.minima) if "saddle" not in m.flags]
    system = AdsorbateSystem(result.slab, result.adsorbate)
    images = symmetry_images(result.slab)
    orbit = np.array([system.to_state(op.apply(result.minima[i].atoms, result.slab))[0].numpy() for i in usable for op in images])
    owner = np.array([i for i in usable for _ in images])
    binding = len(result.slab) + system.anchor
    a = bench.reference_draws(result, system, 300.0, orbit, owner, 512, 0, binding, noise_size=64)
    # a refinement that found exactly the reference minima scores the sampling noise; one that
    # found only the most probable minimum misses the others' share
    assert max(bench.same_map_tv(result, system, 300.0, orbit, owner, a, 512, 3, binding)) < 0.06
    top = int(np.argmax(np.asarray(result.probabilities(300.0))))
    only_top = ReferenceResult.from_dict({**result.to_dict(), "minima": [result.to_dict()["minima"][top]]})
    per_minimum, _ = bench.same_map_tv(only_top, system, 300.0, orbit, owner, a, 512, 3, binding)
    assert abs(per_minimum - (1 - a["minima"].get(top, 0.0))) < 0.05
    b = bench.reference_draws(result, system, 300.0, orbit, owner, 512, 1, binding, noise_size=64)
    assert total_variation(a["kinds"], b["kinds"]) < 0.06 and total_variation(a["minima"], b["minima"]) < 0.06
    kind_ref: dict = {}
    for i, p in zip(usable, np.asarray(result.probabilities(300.0))[usable]):
        kind_ref[result.minima[i].site_kind] = kind_ref.get(result.minima[i].site_kind, 0.0) + float(p)
    assert total_variation(a["kinds"], kind_ref) > 0.15
    assert 0 <= a["noise"][0] <= 1 and 0 <= a["noise"][1] <= 1 and len(a["assigned"]) == 512


def test_baseline_identical_to_the_reference_scores_zero(bench, tmp_path, monkeypatch, capsys):
    """A baseline search that is the reference itself: TV at the draws' noise, same lowest energy, same cost."""
    torch.manual_seed(0)
    config = AdsorptionModelConfig(network=tiny_adsorption_network(), network_depth=3.0)
    model = tmp_path / "tiny.pt"
    save_checkpoint(model, config=config.to_dict(), state_dict=AdsorptionScoreModel(config).state_dict(), metadata={"note": "untrained"})
    (tmp_path / "base").mkdir()
    (tmp_path / "base" / RESULT.name).write_bytes(RESULT.read_bytes())
    monkeypatch.setattr(sys, "argv", ["bench", str(RESULT), "--model", str(model), "-n", "4", "--baseline", str(tmp_path / "base")])
    assert bench.main() == 0
    out = json.loads(capsys.readouterr().out)
    system, s = out["per_system"][0], out["summary"]
    assert system["baseline_lowest_minus_reference_eV"] == 0 and system["baseline_calls_ratio"] == 1
    assert system["baseline_minima"] == len(ReferenceResult.from_json(RESULT).minima)
    for key in ("tv_300K", "tv_1200K", "tv_site_kind_300K", "tv_site_kind_1200K"):
        assert system[f"baseline_{key}"] <= 0.06, key  # two independent 2,048-draw sets of one distribution
        assert s[f"baseline_{key}_mean"] == system[f"baseline_{key}"]
    assert s["baseline_calls_ratio_median"] == 1


def test_missing_baseline_is_refused_before_any_work(bench, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["bench", str(RESULT), "--baseline", str(tmp_path)])
    with pytest.raises(SystemExit) as exc:
        bench.main()
    assert exc.value.code == 2 and "--baseline: no" in capsys.readouterr().err


def test_reference_delta_scores_the_reference_against_itself(bench, tmp_path, monkeypatch, capsys):
    """``--reference-delta 0.01`` recomputes the Hessians at the search's own displacement: the same
    distribution up to the draws' noise, the same minima, the Hessians' calls; a non-positive
    displacement is refused before any work."""
    from ase.build import fcc111

    from digmat.adsorption import convert_ase_tags, reference_search

    torch.manual_seed(0)
    config = AdsorptionModelConfig(network=tiny_adsorption_network(), network_depth=3.0)
    model = tmp_path / "tiny.pt"
    save_checkpoint(model, config=config.to_dict(), state_dict=AdsorptionScoreModel(config).state_dict(), metadata={"note": "untrained"})
    slab = convert_ase_tags(fcc111("Pt", (2, 2, 3), vacuum=8.0))
    search = reference_search(slab, "O", "emt", num_random=2, seed=0)
    path = tmp_path / "Pt-111-O-emt.json"
    search.to_json(path)
    monkeypatch.setattr(sys, "argv", ["bench", str(path), "--model", str(model), "-n", "4", "--calculator", "emt", "--reference-delta", "0.01"])
    monkeypatch.setattr(bench, "_relax", lambda atoms, calc, steps, fmax=0.05: (atoms, float(len(atoms)), 1))  # no BFGS: I/O only
    assert bench.main() == 0
    out = json.loads(capsys.readouterr().out)
    system, s = out["per_system"][0], out["summary"]
    assert system["reference_delta_minima"] == len(search.minima) and system["reference_delta_lowest_minus_reference_eV"] == 0
    hessian_calls = 6 * sum(len(m.hessian_indices) for m in search.minima)
    assert system["reference_delta_calls_ratio"] == pytest.approx(hessian_calls / search.cost["calls"], abs=1e-4)
    for key in ("tv_300K", "tv_1200K", "tv_site_kind_300K", "tv_site_kind_1200K"):
        assert system[f"reference_delta_{key}"] <= 0.06, key
        assert s[f"reference_delta_{key}_mean"] == system[f"reference_delta_{key}"]
    monkeypatch.setattr(sys, "argv", ["bench", str(path), "--calculator", "emt", "--reference-delta", "0"])
    with pytest.raises(SystemExit) as exc:
        bench.main()
    assert exc.value.code == 2 and "--reference-delta must be a positive" in capsys.readouterr().err
