"""A reference folder that holds a single pose of a complex: the ligand model's learnability check.

With one reference pose the Bayes-optimal denoiser is exact (its error, the floor that
``bench_ligand.py --profile`` prints, is zero), so whatever error a model trained on it keeps is
the network's own: its representation or read-out, not the ensemble's ambiguity. The pose is the
reference's most probable one in the first half of its chains (by its own or a calculator's
weights); it is also written into the first chain of the second half, so each half of the chains
that ``--profile`` compares (``bench_ligand.py``: chains ``[0, C/2)`` and ``[C/2, C)``) holds it. The
new ``samples.npz`` weighs those two records 0.5 each, everything else 0; train and profile
without ``--weights``/``--reference-weights``.

Usage::

    python recipes/one_pose_reference.py 1uou --weights gfnff --out runs/one_pose
    python recipes/train_ligand.py --data runs/one_pose --train 1uou --out runs/ligand_one_pose \\
        --steps 1500 --time 0.15 --threads 1
    python recipes/bench_ligand.py 1uou --model runs/ligand_one_pose/model.pt --reference runs/one_pose \\
        -n 16 --judge 0 --profile 0.05 0.15 0.3 --threads 1
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

import numpy as np

POSE_FIELDS = ("t", "rotation", "tau", "energy_maps", "energy_direct")  # per-pose arrays of samples.npz


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("complex", help="complex name (a folder of --data)")
    parser.add_argument("--data", type=Path, default=Path("data/ligands"), help="reference folder")
    parser.add_argument("--weights", default=None, metavar="CALC", help="pick the pose by CALC's weights (weights_CALC.npz)")
    parser.add_argument("--out", type=Path, required=True, help="new reference folder (OUT/COMPLEX is written)")
    args = parser.parse_args(argv)

    from digmat.files import atomic_write_bytes
    from digmat.tasks.ligand_data import reference_weights

    source = args.data / args.complex
    if not (source / "samples.npz").is_file():
        parser.error(f"no reference at {source} (samples.npz)")
    samples = dict(np.load(source / "samples.npz"))
    weights = reference_weights(source, args.weights)
    if weights.ndim != 2 or weights.shape[1] < 2:
        parser.error(f"{source}: expected weights of shape (records, >= 2 chains), got {weights.shape}")
    half = weights.shape[1] // 2
    pick = np.unravel_index(int(np.argmax(weights[:, :half])), (weights.shape[0], half))
    copy = (pick[0], half)
    for name in POSE_FIELDS:
        samples[name][copy] = samples[name][pick]
    one = np.zeros_like(weights)
    one[pick] = one[copy] = 0.5
    samples["weights"] = one
    target = args.out / args.complex
    target.mkdir(parents=True, exist_ok=True)
    for path in source.iterdir():  # summary and modes as they are; no calculator weights
        if path.is_file() and not path.name.startswith(("samples", "weights_")):
            shutil.copy2(path, target / path.name)
    # train and profile with its own weights (no --weights)
    atomic_write_bytes(target / "samples.npz", lambda handle: np.savez(handle, **samples))
    print(f"{target}: record {pick[0]}, chain {pick[1]} (weight {weights[pick]:.3g}), copied to chain {half}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
