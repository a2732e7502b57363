"""Default DiG adsorption training corpus: reference site searches and equilibrium datasets.

Systems: 10 adsorbates (H O N C OH CO CH3 CH3O NH2 CH3CO) on
8 metals (Pt Pd Cu Ag Au Ni Rh Ir) × 3 facets ((111), (100), (211)) and
12 binary-alloy compositions × 2 facets ((111), (100)) — 48 surfaces,
480 systems.  Split (deterministic, by surface and composition, never by
system): every system on the held-out alloy compositions and on the
held-out metal facets is ``heldout``; the rest is ``train`` — so the
held-out set has surfaces and compositions the model never saw.

Stages (each resumable; rerun the same command after a kill and nothing
finished is redone — relaxations and Hessians are cached per placement
under ``OUT/work/<sid>/``):

1. ``--search`` (default): per system a reference site search
   (:func:`digmat.adsorption.reference_search`) → ``OUT/results/<sid>.json``
   (minima, energies, Hessians, probabilities; ~50 kB each, the part to
   keep).  ``--budget N`` caps the new relaxations of one run;
   ``--chunk i/n`` takes every n-th system from the i-th (one job per chunk
   on a cluster, or several processes here).
2. ``--datasets``: per finished system and temperature, equilibrium samples
   regenerated deterministically from its result file →
   ``OUT/datasets/<split>/<sid>.lmdb`` (a folder of shards that
   :class:`digmat.data.LmdbDataset` reads as one dataset).

``--status`` prints what ``OUT/results`` covers (systems, surfaces and adsorbates per split,
calls, hours, size) as JSON. ``--dry-run`` lists the systems with their size and an estimated cost, and
writes nothing.  ``OUT/recipe.json`` records the recipe, settings, split and
size.  Cost model: calls ≈ placements × calls per relaxation (scaled with
adsorbate size) + Hessian calls; seconds ≈ calls × seconds per call per atom
× atoms — the defaults are the CHGNet pilot's (O/Pt(111), 1 CPU thread).

Examples::

    python recipes/make_adsorption_corpus.py --out corpus --dry-run
    python recipes/make_adsorption_corpus.py --out corpus --chunk 0/16 --budget 2000 --workers 2
    python recipes/make_adsorption_corpus.py --out corpus --scheduler local --workers 16
    python recipes/make_adsorption_corpus.py --out corpus --scheduler tcp://head:8786  # a running cluster
    python recipes/make_adsorption_corpus.py --out corpus --datasets --samples 200
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import sys
import time
import zlib
from pathlib import Path

METALS = ("Pt", "Pd", "Cu", "Ag", "Au", "Ni", "Rh", "Ir")
METAL_FACETS = ((1, 1, 1), (1, 0, 0), (2, 1, 1))
ALLOYS = (  # build_slab specs: L1₂ ("A3B"), L1₀ ("AB"), random substitutional ("A0.5B0.5")
    "Pt3Ni", "PtNi", "Cu3Au", "CuAu", "Pd3Cu", "Ag3Pd", "Pt3Rh", "Ni3Ir",
    "Pd0.5Au0.5", "Cu0.5Ni0.5", "Pd3Au", "Cu3Pt",
    "Cu3Pd", "Au3Cu", "Ni3Pt", "Pd3Ag",  # 2026-12-06: more L1₂ hosts for transfer to the held-out alloys
)
ALLOY_FACETS = ((1, 1, 1), (1, 0, 0))
ADSORBATES = ("*H", "*O", "*N", "*C", "*OH", "*CO", "*CH3", "*OCH3", "*NH2", "*COCH3")
HELD_OUT_COMPOSITIONS = ("Pd3Au", "Cu3Pt")
HELD_OUT_SURFACES = (("Rh", (2, 1, 1)), ("Ag", (1, 0, 0)), ("Ir", (1, 1, 1)))
TEMPERATURES = (300.0, 600.0, 1200.0)

# pilot calibration (CHGNet 0.3.0, 1 thread, this 2-core machine shared with others):
# O/Pt(111), 46 atoms: 715 calls / 24 relaxations, 0.47 s per call;
# CO/Cu(100), 82 atoms: 891 calls / 23 relaxations (30 × 1.25 predicted 37.5), 0.65 s per call.
CALLS_PER_RELAXATION = 30.0  # for a one-atom adsorbate; × (1 + 0.25 (n_atoms − 1))
SECONDS_PER_CALL_ATOM = 0.5 * (0.47 / 46 + 0.65 / 82)  # 9.1 ms


def surfaces() -> list[tuple[str, tuple[int, int, int]]]:
    """All corpus surfaces as (bulk spec, Miller indices)."""
    return [(m, f) for m in METALS for f in METAL_FACETS] + [(a, f) for a in ALLOYS for f in ALLOY_FACETS]


def split_of(bulk: str, miller: tuple[int, int, int]) -> str:
    """``heldout`` for held-out compositions and surfaces, else ``train``."""
    if bulk in HELD_OUT_COMPOSITIONS or (bulk, tuple(miller)) in HELD_OUT_SURFACES:
        return "heldout"
    return "train"


def system_id(bulk: str, miller, adsorbate: str) -> str:
    return f"{bulk}-{''.join(map(str, miller))}-{adsorbate.replace('*', '')}"


def systems() -> list[dict]:
    """Every corpus system, in a fixed order."""
    return [
        {"sid": system_id(b, f, a), "bulk": b, "miller": list(f), "adsorbate": a, "split": split_of(b, f)}
        for b, f in surfaces() for a in ADSORBATES
    ]


def _rank(sid: str, patterns: list[str]) -> int | None:
    """Index of the first glob pattern ``sid`` matches, or None."""
    return next((k for k, pattern in enumerate(patterns) if fnmatch.fnmatchcase(sid, pattern)), None)


def parse_chunk(text: str) -> tuple[int, int]:
    try:
        i, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--chunk must look like i/n, got {text!r}") from None
    if not (n >= 1 and 0 <= i < n):
        raise argparse.ArgumentTypeError(f"--chunk {text}: need 0 <= i < n")
    return i, n


def _slab(system: dict, cache: dict):
    from digmat.adsorption import build_slab

    key = (system["bulk"], tuple(system["miller"]))
    if key not in cache:
        cache[key] = build_slab(system["bulk"], tuple(system["miller"]))
    return cache[key]


def estimate(system: dict, slabs: dict, args) -> dict:
    """Placements, calculator calls and CPU seconds of one system (cost model in the module docstring)."""
    from digmat.adsorption import get_adsorbate
    from digmat.adsorption.placement import surface_sites

    slab = _slab(system, slabs)
    key = ("sites", system["bulk"], tuple(system["miller"]))
    if key not in slabs:
        slabs[key] = len(surface_sites(slab))
    n_ads = len(get_adsorbate(system["adsorbate"]))
    placements = slabs[key] + args.random
    calls = placements * args.calls_per_relaxation * (1 + 0.25 * (n_ads - 1))
    calls += 4 * 6 * n_ads  # ~4 minima, central-difference Hessian of the adsorbate
    natoms = len(slab) + n_ads
    return {"natoms": natoms, "placements": placements, "calls": int(calls),
            "cpu_hours": calls * args.seconds_per_call_atom * natoms / 3600.0}


def write_recipe(out: Path, rows: list[dict], args) -> None:
    from digmat.files import atomic_write_bytes

    recipe = {
        "recipe": "recipes/make_adsorption_corpus.py",
        "metals": METALS, "metal_facets": METAL_FACETS, "alloys": ALLOYS, "alloy_facets": ALLOY_FACETS,
        "adsorbates": ADSORBATES, "held_out_compositions": HELD_OUT_COMPOSITIONS,
        "held_out_surfaces": [[b, list(f)] for b, f in HELD_OUT_SURFACES],
        "temperatures": TEMPERATURES,
        "settings": {"calculator": args.calculator, "random": args.random, "fmax": 0.05, "max_steps": 300,
                     "samples_per_temperature": args.samples, "seed": args.seed},
        "size": {"surfaces": len(surfaces()), "systems": len(rows),
                 "train": sum(r["split"] == "train" for r in rows),
                 "heldout": sum(r["split"] == "heldout" for r in rows),
                 "estimated_calls": sum(r.get("calls", 0) for r in rows),
                 "estimated_cpu_hours": round(sum(r.get("cpu_hours", 0.0) for r in rows), 1)},
        "systems": rows,
    }
    blob = json.dumps(recipe, indent=1).encode()
    atomic_write_bytes(out / "recipe.json", lambda fh: fh.write(blob))


def run_search(chunk: list[dict], args, slabs: dict) -> int:
    from digmat.adsorption import ExecutionConfig, SearchConfig, reference_search

    execution = ExecutionConfig(workers=args.workers, device=args.device, scheduler=args.scheduler)
    remaining = args.budget
    for system in chunk:
        path = args.out / "results" / f"{system['sid']}.json"
        if path.is_file():
            continue
        if remaining is not None and remaining <= 0:
            print(f"budget spent; rerun to continue (next: {system['sid']})")
            return 3
        t0 = time.perf_counter()
        config = SearchConfig(temperatures=TEMPERATURES, num_random=args.random, seed=args.seed + zlib.crc32(system["sid"].encode()) % 10**6)
        result = reference_search(
            _slab(system, slabs), system["adsorbate"], args.calculator, config, execution=execution,
            work_dir=args.out / "work" / system["sid"], budget=remaining, system_id=system["sid"], progress=args.progress,
        )
        if remaining is not None:
            remaining -= result.cost["new_relaxations"]
        if not result.complete:
            print(f"{system['sid']}: budget spent mid-system; rerun to continue")
            return 3
        result.to_json(path)
        kinds = ", ".join(f"{m.site_kind} {m.energy - result.minima[0].energy:+.3f}" for m in result.minima[:4])
        print(f"{system['sid']}: {len(result.minima)} minima ({kinds}); {result.cost['new_calls']} calls, "
              f"{time.perf_counter() - t0:.0f} s", flush=True)
    return 0


def run_datasets(chunk: list[dict], args) -> int:
    from digmat.adsorption import ReferenceResult, write_equilibrium_dataset

    missing = 0
    for system in chunk:
        src = args.out / "results" / f"{system['sid']}.json"
        dst = args.out / "datasets" / system["split"] / f"{system['sid']}.lmdb"
        if not src.is_file():
            missing += 1
            continue
        if dst.is_file():
            continue
        result = ReferenceResult.from_json(src)
        if not result.minima:
            print(f"{system['sid']}: no minima (every relaxation anomalous); skipped")
            continue
        n = write_equilibrium_dataset([result], TEMPERATURES, dst, args.samples, seed=args.seed)
        print(f"{system['sid']}: {n} samples -> {dst}", flush=True)
    if missing:
        print(f"{missing} systems of this chunk have no search result yet")
    return 0


def surface_name(system: dict) -> str:
    """``bulk-hkl`` of a system row, e.g. ``Pt3Ni-111``."""
    return f"{system['bulk']}-{''.join(map(str, system['miller']))}"


def corpus_status(rows: list[dict], out: Path) -> dict:
    """What the finished searches in ``out/results`` cover: systems, surfaces, adsorbates, cost."""
    done = {}
    for s in rows:
        path = out / "results" / f"{s['sid']}.json"
        if path.is_file():
            done[s["sid"]] = (s, json.loads(path.read_text()), path.stat().st_size)
    status: dict = {"systems": {}, "surfaces": {}, "adsorbates": {}}
    for split in ("train", "heldout"):
        all_rows = [s for s in rows if s["split"] == split]
        have = [done[s["sid"]][0] for s in all_rows if s["sid"] in done]
        wanted, covered = {surface_name(s) for s in all_rows}, {surface_name(s) for s in have}
        status["systems"][split] = {"done": len(have), "of": len(all_rows)}
        status["surfaces"][split] = {"covered": len(covered), "of": len(wanted), "missing": sorted(wanted - covered)}
        status["adsorbates"][split] = {a.replace("*", ""): sum(s["adsorbate"] == a for s in have) for a in ADSORBATES}
    status["alloy_surfaces_covered"] = len({surface_name(s) for s, _, _ in done.values() if s["bulk"] in ALLOYS})
    status["calculator_calls"] = sum(r["cost"]["calls"] for _, r, _ in done.values())
    status["relax_hours"] = round(sum(r["cost"]["wall_seconds"] for _, r, _ in done.values()) / 3600, 2)
    status["megabytes"] = round(sum(size for _, _, size in done.values()) / 1e6, 2)
    return status


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path("corpus"), help="output folder")
    parser.add_argument("--chunk", type=parse_chunk, default=(0, 1), help="i/n: every n-th system from the i-th")
    parser.add_argument("--split", choices=("all", "train", "heldout"), default="all")
    parser.add_argument("--select", type=lambda t: [x for x in t.split(",") if x], default=None,
                        help="comma-separated glob patterns on system ids (e.g. 'Pt-111-*,*-111-CO'); "
                             "systems run in the order of the first pattern they match")
    parser.add_argument("--dry-run", action="store_true", help="list systems and estimated cost only")
    parser.add_argument("--datasets", action="store_true", help="write LMDB datasets from finished searches")
    parser.add_argument("--status", action="store_true", help="print what OUT/results covers (JSON) and exit")
    parser.add_argument("--budget", type=int, default=None, help="new relaxations allowed in this run")
    parser.add_argument("--calculator", default="chgnet")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--random", type=int, default=100, help="random placements per system (default 100)")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--scheduler", default=None, metavar="ADDRESS",
                        help="relaxations on dask.distributed: 'local' (LocalCluster of --workers processes) or a scheduler address")
    parser.add_argument("--samples", type=int, default=200, help="samples per system and temperature")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--calls-per-relaxation", type=float, default=CALLS_PER_RELAXATION)
    parser.add_argument("--seconds-per-call-atom", type=float, default=SECONDS_PER_CALL_ATOM)
    parser.add_argument("--progress", action="store_true", help="progress bars per system")
    args = parser.parse_args(argv)
    i, n = args.chunk
    rows = systems()
    if args.select:
        rows_selected = [s for s in rows if _rank(s["sid"], args.select) is not None]
        rows_selected.sort(key=lambda s: _rank(s["sid"], args.select))
    else:
        rows_selected = rows
    chunk = [s for s in rows_selected[i::n] if args.split in ("all", s["split"])]
    if args.status:
        print(json.dumps(corpus_status(rows, args.out), indent=1))
        return 0
    slabs: dict = {}
    if args.dry_run:
        total = {"calls": 0, "cpu_hours": 0.0}
        print(f"{'sid':22s} {'split':8s} {'atoms':>5s} {'placements':>10s} {'calls':>7s} {'cpu h':>6s}")
        for s in chunk:
            est = estimate(s, slabs, args)
            total["calls"] += est["calls"]
            total["cpu_hours"] += est["cpu_hours"]
            print(f"{s['sid']:22s} {s['split']:8s} {est['natoms']:5d} {est['placements']:10d} "
                  f"{est['calls']:7d} {est['cpu_hours']:6.2f}")
        print(f"{len(chunk)} systems (chunk {i}/{n}, of {len(rows)}; {len(surfaces())} surfaces): "
              f"~{total['calls']:,} calculator calls, ~{total['cpu_hours']:.0f} CPU-hours at "
              f"{args.seconds_per_call_atom * 1000:.1f} ms per call per atom")
        return 0
    if args.datasets:
        return run_datasets(chunk, args)
    if not (args.out / "recipe.json").is_file():
        write_recipe(args.out, [dict(s, **estimate(s, slabs, args)) for s in rows], args)
    return run_search(chunk, args, slabs)


if __name__ == "__main__":
    sys.exit(main())
