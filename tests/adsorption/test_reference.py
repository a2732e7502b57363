"""Reference site search with EMT (test-only potential) on O/Pt(111).

What EMT gives for O on a 2×2×3 Pt(111) cell (fmax 0.05): fcc and hcp
hollows are true minima, degenerate to < 1 meV; the bridge (+0.03 eV) and
ontop (+0.15 eV) stationary points that the symmetric heuristic placements
reach have imaginary modes (saddles).  EMT barely separates fcc from hcp
(DFT: fcc lower by ~0.4–0.5 eV), so these tests check the machinery, not
the chemistry.
"""

from __future__ import annotations

import json

import ase.db
import ase.io
import numpy as np
import pytest
from ase import units
from ase.build import fcc111
from ase.calculators.emt import EMT

from digmat.adsorption import convert_ase_tags, get_adsorbate
from digmat.adsorption.reference import ReferenceResult, reference_search
from digmat.adsorption.thermo import VIB_FLOOR
from digmat.cli.main import main

SETTINGS = {"num_random": 12, "seed": 0}


@pytest.fixture(scope="module")
def slab():
    return convert_ase_tags(fcc111("Pt", (2, 2, 3), vacuum=8.0))


@pytest.fixture(scope="module")
def result(slab, tmp_path_factory):
    work = tmp_path_factory.mktemp("work")
    return reference_search(slab, "O", "emt", work_dir=work, **SETTINGS), work


def test_minima_sites_and_energies(result):
    res, _ = result
    assert res.complete and len(res.placements) == 4 + SETTINGS["num_random"]
    kinds = {m.site_kind: m for m in res.minima}
    assert {"hollow-fcc", "hollow-hcp"} <= set(kinds)
    for kind in ("hollow-fcc", "hollow-hcp"):
        m = kinds[kind]
        assert m.multiplicity == 4 and m.n_imaginary == 0 and "saddle" not in m.flags
        assert m.binding_symbols == ["Pt", "Pt", "Pt"] and len(m.vib_energies) == 3
    # EMT: hollows lowest, then bridge, then ontop (when reached, they are saddles)
    order = [m.site_kind for m in sorted(res.minima, key=lambda m: m.energy)]
    assert set(order[:2]) == {"hollow-fcc", "hollow-hcp"}
    if "bridge" in kinds and "ontop" in kinds:
        assert kinds["bridge"].energy < kinds["ontop"].energy
        assert kinds["bridge"].multiplicity == 12 and kinds["ontop"].multiplicity == 4
    # every good placement belongs to exactly one minimum
    members = sorted(i for m in res.minima for i in m.placements)
    good = sorted(p.index for p in res.placements if not p.flags)
    assert members == good
    # the energies of distinct minima of one site kind differ by more than the tolerance
    for a in res.minima:
        for b in res.minima:
            if a is not b and a.site_key == b.site_key:
                assert abs(a.energy - b.energy) > 0.02


def test_probabilities(result):
    res, _ = result
    spread = []
    for t in res.temperatures:
        p = res.probabilities(t)
        assert p.sum() == pytest.approx(1.0, abs=1e-12) and (p >= 0).all()
        assert sum(res.site_probabilities(t).values()) == pytest.approx(1.0, abs=1e-12)
        for m, q in zip(res.minima, p, strict=True):
            assert m.probability[t] == pytest.approx(q)
            if "saddle" in m.flags:
                assert q == 0.0
        spread.append(p.max())
    assert spread[0] >= spread[1] >= spread[2]  # higher T, flatter
    # a fake 0.1 eV split between the hollows gives the Boltzmann ratio g exp(-ΔG/kT)
    fcc = next(m for m in res.minima if m.site_kind == "hollow-fcc")
    hcp = next(m for m in res.minima if m.site_kind == "hollow-hcp")
    saved = hcp.energy
    hcp.energy = fcc.energy + 0.1 + fcc.vib_free_energy(300.0) - hcp.vib_free_energy(300.0)
    try:
        p = res.probabilities(300.0)
        i, j = res.minima.index(fcc), res.minima.index(hcp)
        assert p[i] / p[j] == pytest.approx(np.exp(0.1 / (units.kB * 300.0)), rel=1e-9)
    finally:
        hcp.energy = saved


def test_resume_redoes_nothing(slab, result, tmp_path):
    res, _ = result
    part = reference_search(slab, "O", "emt", work_dir=tmp_path, budget=5, **SETTINGS)
    assert not part.complete and part.minima == [] and part.cost["new_relaxations"] == 5
    assert sum("pending" in p.flags for p in part.placements) == len(part.placements) - 5
    full = reference_search(slab, "O", "emt", work_dir=tmp_path, **SETTINGS)
    assert full.complete
    assert full.cost["cached_relaxations"] == 5
    assert full.cost["new_relaxations"] == len(full.placements) - 5
    again = reference_search(slab, "O", "emt", work_dir=tmp_path, **SETTINGS)
    assert again.cost["new_relaxations"] == 0 and again.cost["new_calls"] == 0
    assert again.cost["calls"] == full.cost["calls"] > 0  # what the result cost, cached work included
    energies = lambda r: [round(m.energy, 8) for m in r.minima]
    assert energies(full) == energies(res) == energies(again)
    # a changed setting never reuses a stale result
    other = reference_search(slab, "O", "emt", work_dir=tmp_path, budget=0, fmax=0.04, **SETTINGS)
    assert other.cost["cached_relaxations"] == 0 and not other.complete


def test_translated_and_rotated_slab_gives_the_same_sites(slab, result):
    res, _ = result
    moved = slab.copy()
    moved.translate([1.37, 0.61, 0.0])
    moved.wrap()
    moved.rotate(37.0, "z", rotate_cell=True)
    other = reference_search(moved, "O", "emt", vibrations=False, **SETTINGS)
    key = lambda r: sorted((m.site_kind, m.multiplicity) for m in r.minima)
    assert key(other) == key(res)
    # different random points relax along different paths: energies agree to the fmax tolerance
    energy = lambda r: {m.site_kind: m.energy for m in r.minima}
    for kind, e in energy(res).items():
        assert energy(other)[kind] == pytest.approx(e, abs=0.01)


def test_json_and_structures_round_trip(result, tmp_path):
    res, _ = result
    path = res.to_json(tmp_path / "ref.json")
    data = json.loads(path.read_text())
    assert data["cost"]["calls"] == res.cost["calls"] > 0 and "wall_seconds" in data["cost"]
    back = ReferenceResult.from_json(path)
    for t in res.temperatures:
        np.testing.assert_allclose(back.probabilities(t), res.probabilities(t), atol=1e-5)
    assert [m.site_kind for m in back.minima] == [m.site_kind for m in res.minima]
    np.testing.assert_allclose(back.minima[0].hessian, res.minima[0].hessian, atol=1e-5)
    images = ase.io.read(res.write_structures(tmp_path / "minima.extxyz"), index=":")
    assert len(images) == len(res.minima)
    assert images[0].get_potential_energy() == pytest.approx(res.minima[0].energy)
    assert images[0].info["site_kind"] == res.minima[0].site_kind
    assert (images[0].get_tags() == res.minima[0].atoms.get_tags()).all()
    with ase.db.connect(res.write_structures(tmp_path / "minima.db")) as db:
        rows = list(db.select())
    assert len(rows) == len(res.minima) and rows[0].site_kind == res.minima[0].site_kind
    assert rows[0].data["binding_symbols"] == " ".join(res.minima[0].binding_symbols)
    assert not list(tmp_path.glob(".*"))  # no temporary files left behind
    with pytest.raises(ValueError, match="not a digmat reference"):
        ReferenceResult.from_dict({"format": "other"})


def test_worker_processes_give_the_same_minima(slab, tmp_path):
    kwargs = {"num_random": 3, "heuristic": True, "vibrations": True, "seed": 2}
    serial = reference_search(slab, "O", "emt", workers=1, **kwargs)
    parallel = reference_search(slab, "O", "emt", workers=2, work_dir=tmp_path, **kwargs)
    assert [(m.site_kind, m.multiplicity, m.placements) for m in parallel.minima] == \
        [(m.site_kind, m.multiplicity, m.placements) for m in serial.minima]
    np.testing.assert_allclose([m.energy for m in parallel.minima], [m.energy for m in serial.minima])
    np.testing.assert_allclose(parallel.minima[0].hessian, serial.minima[0].hessian, atol=1e-8)  # eV/Å², round-off of zeros
    assert parallel.cost["calls"] == serial.cost["calls"]


def test_calculator_instance_and_errors(slab):
    res = reference_search(slab, get_adsorbate("O"), EMT(), num_random=2, heuristic=False,
                           vibrations=False)
    assert res.calculator == "EMT" and res.complete
    with pytest.raises(ValueError, match="unknown calculator"):
        reference_search(slab, "O", "nosuch", num_random=1)
    with pytest.raises(ValueError, match="unknown adsorbate"):
        reference_search(slab, "Xyzzy", "emt", num_random=1)
    with pytest.raises(ValueError, match="temperatures"):
        reference_search(slab, "O", "emt", temperatures=(0.0,))
    with pytest.raises(ValueError, match="instance"):
        reference_search(slab, "O", EMT(), num_random=2, heuristic=False, workers=2)


def test_cli(slab, tmp_path, capsys):
    path = tmp_path / "slab.extxyz"
    ase.io.write(path, slab)
    out = tmp_path / "out"
    code = main(["reference", str(path), "O", "--calculator", "emt", "--random", "3", "--out", str(out),
                 "--json", "--no-vibrations"])
    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["complete"] and summary["minima"] and summary["cost"]["calls"] > 0
    assert (out / "reference.json").is_file() and (out / "minima.extxyz").is_file()
    assert main(["reference", str(path), "O", "--calculator", "nosuch", "--out", str(out)]) == 2
    assert "unknown calculator" in capsys.readouterr().err
    assert main(["reference", str(tmp_path / "missing.cif"), "O", "--calculator", "emt"]) == 2
    assert "no such slab file" in capsys.readouterr().err
    assert main(["reference", str(path), "Xyzzy", "--calculator", "emt"]) == 2
    assert "unknown adsorbate" in capsys.readouterr().err
    code = main(["reference", str(path), "O", "--calculator", "emt", "--random", "1", "--no-heuristic", "--out", str(out),
                 "--hessian-delta", "0.02", "--json"])
    assert code == 0 and json.loads(capsys.readouterr().out)["complete"]
    assert ReferenceResult.from_json(out / "reference.json").settings["hessian_delta"] == 0.02
    assert main(["reference", str(path), "O", "--calculator", "emt", "--hessian-delta", "0"]) == 2
    assert "--hessian-delta" in capsys.readouterr().err


def test_discarded_geometry_is_kept_and_rechecked(result, tmp_path):
    """Anomalous relaxations keep their relaxed positions, so the flag can be re-checked from
    the result file alone; good relaxations keep none (their minimum holds the structure)."""
    import dataclasses

    from digmat.adsorption.anomalies import detect_anomalies

    res, _ = result
    assert all((p.positions is None) == (p.flags in ([], ["unconverged"], ["failed"])) for p in res.placements)
    moved = res.minima[0].atoms.copy()
    top = int(np.flatnonzero(moved.get_tags() == 1)[0])
    moved.positions[top, 2] += 2.5  # a surface atom pulled out of the surface
    good = next(k for k, p in enumerate(res.placements) if not p.flags)
    fake = dataclasses.replace(res.placements[good], flags=["surface_changed"], minimum=None,
                               positions=np.round(moved.positions, 4).tolist())
    res = dataclasses.replace(res, placements=[*res.placements, fake])
    back = ReferenceResult.from_json(res.to_json(tmp_path / "ref.json"))
    assert back.relaxed_placement(good) is None
    reference, relaxed = back.relaxed_placement(len(back.placements) - 1)
    assert (relaxed.get_tags() == moved.get_tags()).all() and np.allclose(relaxed.positions, moved.positions, atol=1e-4)
    assert detect_anomalies(reference, relaxed).names() == ["surface_changed"]
    assert detect_anomalies(reference, res.minima[0].atoms).names() == []


def test_dask_local_cluster_gives_the_same_minima_and_resumes(slab, result, tmp_path):
    """The search on a dask LocalCluster of 2 workers finds the serial search's minima, caches
    every relaxation as it arrives, and a rerun on the cluster redoes nothing."""
    pytest.importorskip("distributed")
    res, _ = result
    cluster = reference_search(slab, "O", "emt", workers=2, scheduler="local", work_dir=tmp_path, **SETTINGS)
    assert [m.site_kind for m in cluster.minima] == [m.site_kind for m in res.minima]
    np.testing.assert_allclose([m.energy for m in cluster.minima], [m.energy for m in res.minima], atol=1e-6)
    for t in res.temperatures:
        np.testing.assert_allclose(cluster.probabilities(t), res.probabilities(t), atol=1e-6)
    assert cluster.cost["new_relaxations"] == len(cluster.placements)
    assert len(list((tmp_path / "placements").glob("*.json"))) == len(cluster.placements)
    again = reference_search(slab, "O", "emt", workers=2, scheduler="local", work_dir=tmp_path, **SETTINGS)
    assert again.cost["new_relaxations"] == 0 and again.cost["new_calls"] == 0


def test_dask_errors_are_one_line(slab):
    pytest.importorskip("distributed")
    with pytest.raises(ValueError, match="calculator name"):
        reference_search(slab, "O", EMT(), num_random=1, scheduler="local")
    with pytest.raises(ValueError, match="cannot reach the dask scheduler"):
        reference_search(slab, "O", "emt", num_random=1, heuristic=False, scheduler="tcp://127.0.0.1:9")


def test_config_form_equals_the_keyword_form(slab, result):
    """SearchConfig/ExecutionConfig are the same settings as reference_search's keywords."""
    from digmat.adsorption import ExecutionConfig, SearchConfig

    res, work = result
    again = reference_search(slab, "O", "emt", SearchConfig(**SETTINGS), execution=ExecutionConfig(workers=1), work_dir=work)
    assert again.settings == res.settings and again.temperatures == res.temperatures
    assert [m.energy for m in again.minima] == [m.energy for m in res.minima]
    assert again.cost["cached_relaxations"] == len(res.placements)  # same fingerprints: every relaxation read back
    # keyword overrides replace the config's fields
    mixed = reference_search(slab, "O", "emt", SearchConfig(num_random=3), work_dir=work, num_random=SETTINGS["num_random"], budget=0)
    assert mixed.settings["num_random"] == SETTINGS["num_random"]


def test_unknown_keywords_are_a_type_error(slab):
    with pytest.raises(TypeError, match="fmx"):
        reference_search(slab, "O", "emt", fmx=0.1)


def test_config_and_keywords_give_the_same_search(slab):
    """Two fresh searches (no shared cache), one from a SearchConfig and one from the flat
    keywords, find the same minima, energies, Hessians and settings."""
    from digmat.adsorption import SearchConfig

    kwargs = {"temperatures": (250.0, 500.0), "num_random": 2, "heuristic": False, "fmax": 0.1, "max_steps": 100, "seed": 3}
    by_config = reference_search(slab, "O", "emt", SearchConfig(**kwargs))
    by_keywords = reference_search(slab, "O", "emt", **kwargs)
    assert by_config.complete and by_config.minima
    assert by_config.settings == by_keywords.settings == {**SearchConfig(**kwargs).settings(), "vib_floor": VIB_FLOOR}
    assert by_config.temperatures == by_keywords.temperatures == (250.0, 500.0)
    assert by_config.search_config() == by_keywords.search_config() == SearchConfig(**kwargs)
    assert [(m.site_kind, m.placements) for m in by_config.minima] == [(m.site_kind, m.placements) for m in by_keywords.minima]
    assert [m.energy for m in by_config.minima] == [m.energy for m in by_keywords.minima]
    for a, b in zip(by_config.minima, by_keywords.minima, strict=True):
        np.testing.assert_array_equal(a.hessian, b.hessian)
    assert [p.steps for p in by_config.placements] == [p.steps for p in by_keywords.placements]


def test_recompute_vibrations_matches_ase_and_leaves_the_search_alone(result, tmp_path):
    """Each minimum's Hessian redone at another displacement equals ASE's own ``Vibrations`` at that
    displacement; the minima, energies and multiplicities are the search's, the probabilities
    follow the new free energies, the saddle flags the new modes, and the original is untouched."""
    from ase.vibrations import Vibrations

    from digmat.adsorption import recompute_vibrations

    res, _ = result
    before = json.dumps(res.to_dict())
    again = recompute_vibrations(res, "emt", delta=0.03)
    assert json.dumps(res.to_dict()) == before
    assert again.settings["hessian_delta"] == 0.03 and again.cost["hessian_calls"] == 6 * sum(len(m.hessian_indices) for m in res.minima)
    for k, (old, new) in enumerate(zip(res.minima, again.minima, strict=True)):
        assert (new.energy, new.multiplicity, new.site_kind) == (old.energy, old.multiplicity, old.site_kind)
        work = new.atoms.copy()
        work.calc = EMT()
        vib = Vibrations(work, indices=new.hessian_indices, delta=0.03, nfree=2, name=str(tmp_path / f"vib{k}"))
        vib.run()
        np.testing.assert_allclose(new.hessian, vib.get_vibrations().get_hessian_2d(), atol=1e-6)
        assert ("saddle" in new.flags) == (new.n_imaginary > 0)
    for t in res.temperatures:
        g = np.array([m.energy + m.vib_free_energy(t) for m in again.minima])
        usable = np.array(["saddle" not in m.flags for m in again.minima])
        w = np.where(usable, [m.multiplicity for m in again.minima] * np.exp(-(g - g.min()) / (units.kB * t)), 0.0)
        np.testing.assert_allclose(again.probabilities(t), w / w.sum(), atol=1e-12)
    # the search's own displacement gives back its own modes
    same = recompute_vibrations(res, "emt", delta=0.01)
    for old, new in zip(res.minima, same.minima, strict=True):
        np.testing.assert_allclose(new.vib_energies, old.vib_energies, atol=2e-6)


def test_recompute_vibrations_refuses_what_it_cannot_do(result):
    from digmat.adsorption import recompute_vibrations

    res, _ = result
    with pytest.raises(ValueError, match="delta must be positive"):
        recompute_vibrations(res, "emt", delta=0.0)
    with pytest.raises(ValueError, match="searched with emt, not chgnet"):
        recompute_vibrations(res, "chgnet", delta=0.02)
