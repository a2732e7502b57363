"""De-duplicate Carbon-24 (val + test) and label the distinct structures with TB band gaps.

Reads ``<data-dir>/{val,test}.csv`` (CDVAE format), groups equal structures
with ``StructureMatcher(ltol=0.3, stol=0.5, angle_tol=10)``, draws a
reproducible train/held-out split *by distinct structure*, computes the
Xu-Wang-Chan-Ho tight-binding band gap of every representative (and, unless
``--no-member-gaps``, of every member, to record how consistent a group's gaps
are) and writes ``digmat/design/data/carbon24_distinct.json``.

Resumable: matcher buckets and gaps are cached under ``--cache-dir``; rerun
the same command after an interruption.  Single-threaded by default::

    OMP_NUM_THREADS=1 PYTHONPATH=. python recipes/dedupe_carbon24.py \
        --data-dir ../shared/data/carbon_24
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from pathlib import Path

import numpy as np

from digmat.design.structures import distinct_structures, read_cdvae_csv
from digmat.design.bandgap import band_gap
from digmat.design.tightbinding import DEFAULT_KPT_DENSITY

MATCHER = {"ltol": 0.3, "stol": 0.5, "angle_tol": 10.0}


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", default="../shared/data/carbon_24")
    p.add_argument("--splits", nargs="+", default=["val", "test"])
    p.add_argument("--out", default="digmat/design/data/carbon24_distinct.json")
    p.add_argument("--cache-dir", default="/tmp/digmat_carbon24_cache")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--heldout-fraction", type=float, default=0.1)
    p.add_argument("--kpt-density", type=float, default=DEFAULT_KPT_DENSITY)
    p.add_argument("--no-member-gaps", action="store_true",
                   help="label only the representatives (default: every structure, so the JSON "
                        "records how consistent the gaps within a group are)")
    p.add_argument("--no-scale", action="store_true",
                   help="StructureMatcher(scale=False): do not normalise volumes before matching "
                        "(a diagnostic; the default is the CDVAE/Carbon-24 convention scale=True)")
    return p.parse_args(argv)


def cached_gaps(structures, path: Path, kpt_density: float, desc: str) -> dict[str, dict]:
    """TB gaps by id, appended to a JSON-lines cache as they are computed."""
    from tqdm.auto import tqdm

    done: dict[str, dict] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue
            done[rec["id"]] = rec
    todo = [a for a in structures if a.info["id"] not in done]
    with open(path, "a") as fh:
        for atoms in tqdm(todo, desc=desc, mininterval=10):
            bg = band_gap(atoms, kpt_density=kpt_density)
            rec = {"id": atoms.info["id"], "gap": round(bg.gap, 4), "direct": bg.direct,
                   "kpts": list(bg.kpts)}
            done[rec["id"]] = rec
            fh.write(json.dumps(rec) + "\n")
            fh.flush()
    return done


def main(argv=None) -> dict:
    args = parse_args(argv)
    t0 = time.time()
    data_dir = Path(args.data_dir)
    structures = []
    for split in args.splits:
        part = read_cdvae_csv(data_dir / f"{split}.csv")
        for a in part:
            a.info["csv_split"] = split
        structures.extend(part)
    ids = [a.info["id"] for a in structures]
    if len(set(ids)) != len(ids):
        raise SystemExit("duplicate material_id across the input files")
    print(f"read {len(structures)} structures in {time.time() - t0:.0f} s")

    cache = Path(args.cache_dir)
    cache.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha1("\n".join(ids).encode()).hexdigest()[:12]
    t1 = time.time()
    energy = [a.info.get("energy_per_atom", np.nan) for a in structures]
    matcher = dict(MATCHER, scale=not args.no_scale)
    tag = "" if matcher["scale"] else "_noscale"
    result = distinct_structures(structures, **matcher, progress=True,
                                 checkpoint=cache / f"matcher_{digest}{tag}.jsonl")
    print(f"{result.n_distinct} distinct of {len(structures)} ({time.time() - t1:.0f} s)")

    gap_cache = cache / f"gaps_k{args.kpt_density:g}.jsonl"
    reps = [structures[i] for i in result.representatives]
    gaps = cached_gaps(reps, gap_cache, args.kpt_density, "TB gaps (representatives)")
    if not args.no_member_gaps:
        gaps = cached_gaps(structures, gap_cache, args.kpt_density, "TB gaps (all members)")

    rng = np.random.default_rng(args.seed)
    n_held = round(args.heldout_fraction * result.n_distinct)
    held = set(rng.permutation(result.n_distinct)[:n_held].tolist())

    groups = []
    for k, members in enumerate(result.groups):
        rep = structures[members[0]]
        g = gaps[rep.info["id"]]
        groups.append({
            "representative": rep.info["id"],
            "members": [ids[i] for i in members],
            "n_atoms": len(rep),
            "energy_per_atom": None if np.isnan(energy[members[0]]) else energy[members[0]],
            "split": "heldout" if k in held else "train",
            "tb_gap": g["gap"],
            "tb_direct": g["direct"],
        })
        if not args.no_member_gaps:
            groups[-1]["member_tb_gaps"] = [gaps[ids[i]]["gap"] for i in members]
    gap_values = np.array([g["tb_gap"] for g in groups])
    summary = {
        "n_structures": len(structures),
        "n_distinct": result.n_distinct,
        "n_train": result.n_distinct - n_held,
        "n_heldout": n_held,
        "gap_min": float(gap_values.min()),
        "gap_median": float(np.median(gap_values)),
        "gap_max": float(gap_values.max()),
        "share_gap_below_0.5": float(np.mean(gap_values < 0.5)),
        "share_gap_above_4": float(np.mean(gap_values > 4.0)),
    }

    if not args.no_member_gaps:
        spread = np.array([max(g["member_tb_gaps"]) - min(g["member_tb_gaps"])
                           for g in groups if len(g["members"]) > 1])
        dev = np.array([abs(x - g["tb_gap"]) for g in groups for x in g["member_tb_gaps"][1:]])
        summary["group_consistency"] = {
            "n_groups_with_copies": len(spread),
            "share_groups_gap_range_le_0.2": float(np.mean(spread <= 0.2)),
            "share_groups_gap_range_gt_2": float(np.mean(spread > 2.0)),
            "max_gap_range": float(spread.max()),
            "n_members": len(dev),
            "share_members_within_0.2_of_rep": float(np.mean(dev <= 0.2)),
            "median_abs_dev_from_rep": float(np.median(dev)),
        }

    doc = {
        "description": "Carbon-24 (val+test) de-duplicated with pymatgen StructureMatcher; "
                       "tight-binding (Xu-Wang-Chan-Ho 1992) band gaps, eV, of the representative "
                       "(tb_gap) and of every member (member_tb_gaps, same order as members).",
        "source": [f"carbon_24/{s}.csv" for s in args.splits],
        "matcher": matcher,
        "tb": {"model": "Xu, Wang, Chan & Ho, J. Phys.: Condens. Matter 4, 6047 (1992)",
               "kpt_density_per_inv_angstrom": args.kpt_density, "refine": True},
        "split": {"seed": args.seed, "heldout_fraction": args.heldout_fraction,
                  "unit": "distinct structure"},
        "summary": summary,
        "groups": groups,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, separators=(",", ":")) + "\n")
    print(json.dumps(summary, indent=2))
    print(f"wrote {out} ({out.stat().st_size / 1024:.0f} KiB) in {time.time() - t0:.0f} s")
    return doc


if __name__ == "__main__":
    main()
