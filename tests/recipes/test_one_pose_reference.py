"""recipes/one_pose_reference.py: a reference holding one pose, in both halves of its chains."""

from pathlib import Path

import numpy as np
import pytest

DATA = Path(__file__).resolve().parents[2] / "data" / "ligands"


def test_one_pose_reference_keeps_the_most_probable_pose(load_recipe, tmp_path):
    source = DATA / "1uou"
    if not (source / "weights_gfnff.npz").is_file():
        pytest.skip("the committed 1uou reference is missing")
    module = load_recipe("one_pose_reference")
    assert module.main(["1uou", "--data", str(DATA), "--weights", "gfnff", "--out", str(tmp_path)]) == 0
    before, after = np.load(source / "samples.npz"), np.load(tmp_path / "1uou" / "samples.npz")
    gfnff = np.load(source / "weights_gfnff.npz")["weights"]
    w = after["weights"]
    assert w.shape == gfnff.shape and w.sum() == pytest.approx(1.0) and np.count_nonzero(w) == 2
    (r1, r2), (c1, c2) = np.nonzero(w)
    assert r1 == r2 and c1 < 8 and c2 == 8  # the same record, in both halves of the 16 chains
    assert gfnff[r1, c1] == gfnff[:, :8].max()  # GFN-FF's most probable pose of the first half
    for name in ("t", "rotation", "tau"):
        np.testing.assert_array_equal(after[name][r1, c2], before[name][r1, c1])
        np.testing.assert_array_equal(np.delete(after[name].reshape(-1, *after[name].shape[2:]), r1 * 16 + 8, 0),
                                      np.delete(before[name].reshape(-1, *before[name].shape[2:]), r1 * 16 + 8, 0))
    assert (tmp_path / "1uou" / "summary.json").is_file() and not list((tmp_path / "1uou").glob("weights_*"))
    with pytest.raises(SystemExit):
        module.main(["9zzz", "--data", str(DATA), "--out", str(tmp_path)])
