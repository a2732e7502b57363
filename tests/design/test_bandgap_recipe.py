"""recipes/bandgap_carbon.py runs end to end in smoke mode (tiny model and predictor, built-in structures)."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("matgl")


@pytest.mark.slow  # ~2-3 min; the recipe's default path runs in test_shipped_models_run_without_the_carbon24_csvs
def test_smoke_run_writes_cifs_summary_and_plot(tmp_path, monkeypatch, load_recipe):
    module = load_recipe("bandgap_carbon")
    import digmat.design.evaluate as evaluate
    import digmat.design.generate as generate

    module.main(["--smoke", "--target", "0", "--target", "6", "--out", str(tmp_path)])
    assert not list(tmp_path.glob("*_relaxed"))

    def refuse(*args, **kwargs):
        raise AssertionError("a finished run was sampled again")

    # --relax on a rerun relaxes the kept samples instead of drawing new ones
    monkeypatch.setattr(generate, "sample_crystals", refuse)
    summary = module.main(["--smoke", "--target", "0", "--target", "6", "--relax", "emt", "--out", str(tmp_path)])
    on_disk = json.loads((tmp_path / "summary.json").read_text())
    assert on_disk["targets"] == summary["targets"]
    assert set(on_disk["runs"]) == {"unguided", "target_0", "target_6"}
    assert 0 < on_disk["training_set"]["sp3_share"] <= 1  # the prototypes include diamond and graphite
    low, mid, high = on_disk["training_set"]["nn_distance_quantiles"]
    assert 1.0 < low <= mid <= high < 2.0  # bond lengths of the built-in prototypes
    for name, run in on_disk["runs"].items():
        cifs = sorted((tmp_path / name).glob("sample_*.cif"))
        assert len(cifs) == run["n"] == 3
        for key in ("validity", "match_rate_loose", "match_rate_strict", "space_groups", "samples", "sampling_seconds"):
            assert key in run
        assert len(run["samples"]) == 3 and all("gap" in s and "valid" in s for s in run["samples"])
        relaxed = run["relaxed"]  # --relax: the relaxed samples are judged as well, against their own sample too
        assert relaxed["n"] == 3 and {"self_match_rate_loose", "match_rate_loose", "relax_seconds"} <= set(relaxed)
        assert len(sorted((tmp_path / f"{name}_relaxed").glob("sample_*.cif"))) == 3 and relaxed["calculator"] == "emt"
    for c in ("0", "6"):
        assert {"share_within_window", "unguided_share", "ratio"} <= set(on_disk["targets"][c])
        assert {"share_within_window", "unguided_share", "ratio"} <= set(on_disk["targets"][c]["relaxed"])
    png = tmp_path / "gap_histograms.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    from ase.io import read

    atoms = read(sorted((tmp_path / "unguided").glob("*.cif"))[0])
    assert set(atoms.get_chemical_symbols()) == {"C"} and atoms.pbc.all()
    for run in on_disk["runs"].values():  # each sample's closest training match and that match's gap
        assert {"gapped_share", "matched_gapped_share"} <= set(run) and all("matched_gap" in s for s in run["samples"])
    # runs kept by the recipe before the matched-gap figures are re-judged from their CIFs, not resampled
    kept = json.loads((tmp_path / "runs.json").read_text())
    for run in kept["runs"].values():
        for part in (run, run["relaxed"]):
            for k in ("gapped_share", "matched_gapped_share", "gapped_share_of_gapped_matches", "sp3_share", "sp3_share_of_matched",
                      "matched_sp3_share"):
                part.pop(k, None)
            for sample in part["samples"]:
                for k in ("matched_gap", "sp3_share", "matched_sp3_share"):
                    sample.pop(k, None)
    (tmp_path / "runs.json").write_text(json.dumps(kept))
    again = module.main(["--smoke", "--target", "0", "--target", "6", "--relax", "emt", "--out", str(tmp_path)])
    for name, run in again["runs"].items():
        for part, before in ((run, on_disk["runs"][name]), (run["relaxed"], on_disk["runs"][name]["relaxed"])):
            assert part["matched_gapped_share"] == before["matched_gapped_share"] and part["gapped_share"] == before["gapped_share"]
            assert [s["matched_gap"] for s in part["samples"]] == [s["matched_gap"] for s in before["samples"]]
            assert all(part.get(k) == before.get(k) for k in ("sp3_share", "sp3_share_of_matched", "matched_sp3_share"))
            assert "sp3_share_of_matched" in part
    # an interrupted relaxation resumes: only the missing relaxed structure is relaxed again
    kept = json.loads((tmp_path / "runs.json").read_text())
    del kept["runs"]["target_6"]["relaxed"]
    (tmp_path / "runs.json").write_text(json.dumps(kept))
    (tmp_path / "target_6_relaxed" / "sample_001.cif").unlink()
    calls = []
    relax = evaluate.relax
    monkeypatch.setattr(evaluate, "relax", lambda structures, calc, **kw: calls.append(len(structures)) or relax(structures, calc, **kw))
    resumed = module.main(["--smoke", "--target", "0", "--target", "6", "--relax", "emt", "--out", str(tmp_path)])
    assert calls == [1] and resumed["runs"]["target_6"]["relaxed"]["n"] == 3
    # relaxations by another calculator are refused before any work, not mixed in
    with pytest.raises(SystemExit, match="relaxed with emt"):
        module.main(["--smoke", "--target", "0", "--target", "6", "--relax", "chgnet", "--out", str(tmp_path)])


def test_shipped_models_run_without_the_carbon24_csvs(tmp_path, monkeypatch, capsys, load_recipe):
    """The defaults are the shipped models; with no Carbon-24 data the matching is skipped, said so, and the rest runs."""
    import digmat.design.carbon24 as carbon24

    module = load_recipe("bandgap_carbon")
    monkeypatch.setattr(carbon24, "find_carbon24_dir", lambda path=None: None)
    summary = module.main(["--target", "0", "-n", "2", "--steps", "5", "--corrector", "2", "--out", str(tmp_path)])
    assert "not matched" in capsys.readouterr().err
    assert summary["settings"]["model"] == "carbon24" and summary["training_set"]["n"] == 576
    assert summary["settings"]["sampler_config"]["corrector"]["steps"] == 2  # the moves reach the sampler
    for run in summary["runs"].values():
        assert run["n"] == 2 and "match_rate_loose" not in run and len(run["samples"]) == 2
    assert (tmp_path / "gap_histograms.png").is_file() and (tmp_path / "summary.json").is_file()
    # a rerun with the same settings keeps the finished runs (runs.json) instead of sampling again
    import digmat.design.generate as generate

    def refuse(*args, **kwargs):
        raise AssertionError("a finished run was sampled again")

    monkeypatch.setattr(generate, "sample_crystals", refuse)
    again = module.main(["--target", "0", "-n", "2", "--steps", "5", "--corrector", "2", "--out", str(tmp_path)])
    assert again["runs"] == json.loads(json.dumps(summary["runs"], default=float))
    assert "kept from" in capsys.readouterr().err
    # ... but not when they were made with other weights under the same model names
    kept = json.loads((tmp_path / "runs.json").read_text())
    assert set(kept["weights"]) == {"model", "predictor"}
    kept["weights"]["predictor"] = "0" * 16
    (tmp_path / "runs.json").write_text(json.dumps(kept))
    with pytest.raises(AssertionError, match="sampled again"):
        module.main(["--target", "0", "-n", "2", "--steps", "5", "--corrector", "2", "--out", str(tmp_path)])
    assert "other weights" in capsys.readouterr().err
