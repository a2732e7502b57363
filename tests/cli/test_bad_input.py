"""Bad input and faults get one clear line (exit code 2) before any expensive work.

One test per defect of the hardening list (issue 13); each asserts the message and that no
sampling happened (no output files, or a model file that would be needed was never read).
"""

import json
import os
import stat

import pytest
from ase.build import fcc111, fcc211
from ase.db import connect
from ase.geometry import permute_axes
from ase.io import write

from digmat.adsorption import convert_ase_tags, read_slab
from digmat.cli.main import main

from . import run


@pytest.fixture()
def slab_file(tmp_path):
    path = tmp_path / "slab.cif"
    write(path, fcc111("Pt", (2, 2, 3), vacuum=8.0))
    return path


def one_line_error(err: str, *fragments: str) -> None:
    lines = [line for line in err.splitlines() if "error" in line]
    assert len(lines) == 1 and "Traceback" not in err, err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


# 2. output failures are found before the work, in one line
def test_out_naming_a_file_is_refused_before_sampling(tmp_path, slab_file, capsys):
    clash = tmp_path / "taken"
    clash.write_text("keep me")
    code, _, err = run(capsys, "adsorb", slab_file, "O", "--model", tmp_path / "never-read.pt", "--out", clash)
    assert code == 2
    one_line_error(err, "--out", "a file of that name exists")  # not "no model": the output was checked first
    assert clash.read_text() == "keep me"


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_output_folder_is_refused(tmp_path, slab_file, capsys):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(stat.S_IRUSR | stat.S_IXUSR)
    try:
        code, _, err = run(capsys, "adsorb", slab_file, "O", "--out", locked / "out")
    finally:
        locked.chmod(stat.S_IRWXU)
    assert code == 2
    one_line_error(err, "cannot write there")


def test_a_full_disk_is_one_line_and_leaves_no_partial_file(tmp_path, slab_file, tiny_model, capsys, monkeypatch):
    import digmat.files

    def full(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(digmat.files.os, "fsync", full)
    out = tmp_path / "out"
    code, _, err = run(capsys, "adsorb", slab_file, "O", "--model", tiny_model, "-n", "2", "--steps", "2", "--out", out)
    assert code == 2
    one_line_error(err, "No space left on device")
    assert sorted(p.name for p in out.iterdir()) == []  # neither outputs nor temporaries


# 3. solver tolerances are validated
@pytest.mark.parametrize("value", ["-1", "0", "nan", "2"])
def test_density_refuses_bad_tolerances(tmp_path, slab_file, capsys, value):
    code, _, err = run(capsys, "density", slab_file, "--rtol", value, "--out", tmp_path / "out")
    assert code == 2 and "--rtol" in err
    assert not (tmp_path / "out" / "density.json").exists()


# 4. --db: every good row processed, every bad row named, reruns idempotent, provenance recorded
def test_db_mode_processes_good_rows_names_bad_ones_and_reruns_idempotently(tmp_path, tiny_model, capsys):
    db_path = tmp_path / "slabs.db"
    good = fcc111("Pt", (2, 2, 3), vacuum=8.0)
    bad = good.copy()
    bad.positions[1] = bad.positions[0] + [0.1, 0.0, 0.0]  # overlapping atoms
    with connect(db_path) as db:
        first = db.write(good)
        broken = db.write(bad)
        last = db.write(good)
    argv = ("adsorb", "--db", db_path, "O", "-n", "3", "--steps", "2", "--model", tiny_model, "--out", tmp_path / "out", "--seed", "4", "--json")
    code, out, err = run(capsys, *argv)
    report = json.loads(out)
    assert code == 1  # some rows were refused
    assert report["rows_sampled"] == [f"row{first}", f"row{last}"] and list(report["rows_refused"]) == [f"row{broken}"]
    assert f"row{broken} refused" in err and "overlapping atoms" in err
    with connect(db_path) as db:
        rows = list(db.select(digmat_sample=1))
        assert len(rows) == 6
        assert {(r.adsorbate, r.seed, r.temperature, r.model) for r in rows} == {("O", 4, 300.0, str(tiny_model))}
    assert run(capsys, *argv)[0] == 1  # rerun: same rows, no duplicates
    with connect(db_path) as db:
        assert db.count(digmat_sample=1) == 6
        assert db.count() == 9


# 6. domain: an adsorbate on the slab is refused; unknown facets, tiny cells, single layers warned
def test_slab_with_an_adsorbate_is_refused(tmp_path, tiny_model, capsys):
    from ase.build import add_adsorbate

    slab = fcc111("Pt", (3, 3, 3), vacuum=8.0)
    add_adsorbate(slab, "O", 1.2, "fcc")
    write(tmp_path / "with_o.extxyz", slab)
    code, _, err = run(capsys, "adsorb", tmp_path / "with_o.extxyz", "H", "--model", tiny_model, "--out", tmp_path / "out", "-n", "2")
    assert code == 2
    one_line_error(err, "already carries an adsorbate", "bare slab")


def test_facet_outside_the_training_domain_is_warned(tmp_path, tiny_model, capsys):
    """tiny_model records surface_signatures [[9]] (fcc(111)); a (211) step is outside it."""
    write(tmp_path / "pt211.extxyz", fcc211("Pt", (3, 3, 3), vacuum=8.0))
    code, _, err = run(capsys, "adsorb", tmp_path / "pt211.extxyz", "O", "--model", tiny_model, "--out", tmp_path / "out", "-n", "2", "--steps", "2")
    assert code == 0
    assert "warning:" in err and "trained only on surfaces with [9]" in err
    write(tmp_path / "pt111.extxyz", fcc111("Pt", (3, 3, 3), vacuum=8.0))
    code, _, err = run(capsys, "adsorb", tmp_path / "pt111.extxyz", "O", "--model", tiny_model, "--out", tmp_path / "out", "-n", "2", "--steps", "2")
    assert code == 0 and "warning" not in err


def test_surface_signatures_of_fcc_facets():
    from digmat.adsorption import build_slab
    from digmat.tasks.domain import surface_signature

    assert surface_signature(build_slab("Pt", (1, 1, 1))) == (9,)
    assert surface_signature(build_slab("Pt", (1, 0, 0))) == (8,)
    assert surface_signature(build_slab("Pt", (2, 1, 1))) == (7, 9, 10)


@pytest.mark.parametrize(("size", "fragment"), [((1, 1, 3), "small surface cell"), ((3, 3, 1), "single atomic layer")])
def test_tiny_cells_and_single_layers_are_warned(tmp_path, tiny_model, capsys, size, fragment):
    slab = fcc111("Pt", size, vacuum=8.0)
    write(tmp_path / "s.extxyz", slab)
    code, _, err = run(capsys, "adsorb", tmp_path / "s.extxyz", "O", "--model", tiny_model, "--out", tmp_path / "out", "-n", "2", "--steps", "2")
    assert code in (0, 2) and fragment in err  # warned (a 1-layer slab may then be refused by tagging)


# 7. a missing optional potential is refused before sampling
def test_missing_potential_is_refused_before_sampling(tmp_path, slab_file, capsys, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "chgnet" else real(name, *a))
    for option in ("--relax", "--refine", "--reweight"):
        code, _, err = run(capsys, "adsorb", slab_file, "O", option, "chgnet", "--model", tmp_path / "never-read.pt", "--out", tmp_path / "out")
        assert code == 2
        one_line_error(err, option, "not installed", "digmat[potentials]")


# 8. bad options are reported before the work
@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (("adsorb", "{slab}", "O", "--relax", "foo"), "--relax"),
        (("interpolate", "{slab}", "{slab}", "--calculator", "foo"), "--calculator"),
        (("density", "{slab}", "--map", "--grid", "0"), "--grid"),
        (("adsorb", "{slab}", "O", "-n", "0"), "--num-samples"),
        (("adsorb", "{slab}", "O", "-T", "-5"), "--temperature"),
        (("generate", "-n", "0"), "--num-samples"),
    ],
    ids=["relax-foo", "interpolate-calculator-foo", "density-grid-0", "adsorb-n-0", "negative-temperature", "generate-n-0"],
)
def test_bad_options_fail_before_the_model_is_read(tmp_path, slab_file, capsys, argv, fragment):
    code, _, err = run(capsys, *[a.format(slab=slab_file) for a in argv], "--out", tmp_path / "out", "--model", tmp_path / "never-read.pt")
    assert code == 2
    assert fragment in err and "no model" not in err and "no checkpoint" not in err


# 9. a bad device is one line
@pytest.mark.parametrize("device", ["gpu0", "cuda:7", "mps"])
def test_bad_device_is_one_line(tmp_path, slab_file, capsys, device):
    code, _, err = run(capsys, "adsorb", slab_file, "O", "--device", device, "--out", tmp_path / "out")
    assert code == 2
    one_line_error(err, "--device")


# 10. a negative band-gap target is refused
def test_negative_gap_is_refused(tmp_path, capsys):
    code, _, err = run(capsys, "generate", "--gap", "-1", "-n", "2", "--out", tmp_path / "out")
    assert code == 2 and "--gap" in err and not (tmp_path / "out").exists()


# 11. outputs respect the umask
def test_outputs_respect_the_umask(tmp_path):
    from digmat.io import write_json

    old = os.umask(0o022)
    try:
        path = write_json(tmp_path / "a.json", {"x": 1})
        assert stat.S_IMODE(path.stat().st_mode) == 0o644
        os.umask(0o077)
        assert stat.S_IMODE(write_json(tmp_path / "b.json", {}).stat().st_mode) == 0o600
    finally:
        os.umask(old)


# 14. clear messages
def test_damaged_checkpoints_say_what_is_wrong(tmp_path, slab_file, capsys):
    (tmp_path / "empty.pt").write_bytes(b"")
    (tmp_path / "random.pt").write_bytes(os.urandom(4096))
    for name, fragment in (("empty.pt", "is empty"), ("random.pt", "not a torch.save archive")):
        code, _, err = run(capsys, "adsorb", slab_file, "O", "--model", tmp_path / name, "--out", tmp_path / "out")
        assert code == 2
        one_line_error(err, fragment)
        assert "weights_only" not in err


def test_frame_index_out_of_range_names_the_count(tmp_path, slab_file, capsys):
    code, _, err = run(capsys, "density", f"{slab_file}@99", "--out", tmp_path / "out")
    assert code == 2
    one_line_error(err, "holds 1 configuration")


def test_vacuum_along_a_is_not_called_bulk(tmp_path, capsys):
    slab = fcc111("Pt", (2, 2, 3), vacuum=8.0)
    write(tmp_path / "x.cif", permute_axes(slab, [2, 0, 1]))
    code, _, err = run(capsys, "adsorb", tmp_path / "x.cif", "O", "--out", tmp_path / "out")
    assert code == 2
    one_line_error(err, "lies along a, not c", "permute_axes(atoms, [1, 2, 0])")
    fixed = permute_axes(permute_axes(slab, [2, 0, 1]), [1, 2, 0])
    write(tmp_path / "fixed.cif", fixed)
    assert len(read_slab(tmp_path / "fixed.cif")) == len(slab)  # the suggested fix works


def test_unexpected_errors_are_one_line_unless_traceback(tmp_path, capsys, monkeypatch):
    import digmat.cli.demo as demo

    def boom(args):
        raise RuntimeError("something broke\nacross lines")

    monkeypatch.setattr(demo, "run", boom)
    assert main(["demo"]) == 2
    err = capsys.readouterr().err
    one_line_error(err, "RuntimeError: something broke across lines", "--traceback")
    with pytest.raises(RuntimeError):
        main(["demo", "--traceback"])


# 15. size warning; stale temporaries cleaned
def test_large_slab_is_warned(tmp_path, tiny_model, capsys):
    big = convert_ase_tags(fcc111("Pt", (8, 8, 5), vacuum=8.0))
    from digmat.tasks.domain import DomainWarning, check_sampling_slab

    with pytest.warns(DomainWarning, match="large slab"):
        check_sampling_slab(big)


def test_stale_temporaries_of_a_killed_write_are_removed(tmp_path):
    from digmat.io import write_json

    stale = tmp_path / ".sites.json.abc123.tmp.json"
    stale.write_text("{half")
    other = tmp_path / ".other.json.abc123.tmp.json"
    other.write_text("{")
    write_json(tmp_path / "sites.json", {"ok": True})
    assert not stale.exists() and other.exists()
    assert json.loads((tmp_path / "sites.json").read_text()) == {"ok": True}
