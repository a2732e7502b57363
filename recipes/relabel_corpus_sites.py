"""Relabel the sites of reference results in place from their stored structures (no calculator).

Each minimum's ``site_kind``, ``binding_atoms`` and ``binding_symbols`` are recomputed with
:func:`digmat.adsorption.relabel_sites` (:class:`~digmat.adsorption.SiteAssigner`, the rule
``reference_search`` records, and that labels a model's samples and refined minima), every
placement that relaxed into a minimum takes the minimum's kind, and the per-kind
``site_probabilities`` are re-summed.  Nothing else in a file changes (energies, Hessians,
probabilities and de-duplication keys are kept byte for byte); a file whose labels are already
those is not rewritten.  Files are written atomically.

Prints one JSON line per changed system with its most probable site kind at each temperature
before and after, and a summary.

Example::

    python recipes/relabel_corpus_sites.py data/corpus/results/*.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from digmat.adsorption import ReferenceResult, relabel_sites
from digmat.files import atomic_write_bytes


def _top(sites: dict[str, float]) -> str | None:
    return max(sites, key=sites.get) if sites else None


def relabel_file(path: Path, *, write: bool = True) -> dict | None:
    """Relabel one result file; returns what changed (None when nothing did)."""
    raw = path.read_bytes()
    data = json.loads(raw)
    result = ReferenceResult.from_dict(data)
    before = {t: _top(s) for t, s in data.get("site_probabilities", {}).items()}
    old_kinds = [m.site_kind for m in result.minima]
    changed = relabel_sites(result)
    for m, d in zip(result.minima, data["minima"], strict=True):
        d.update(site_kind=m.site_kind, binding_atoms=list(m.binding_atoms), binding_symbols=list(m.binding_symbols))
    for rec, d in zip(result.placements, data["placements"], strict=True):
        if d.get("minimum") is not None:
            d["site_kind"] = rec.site_kind
    if changed:  # re-summed only when a kind changed (a re-sum alone moves the last digits)
        data["site_probabilities"] = {f"{t:g}": result.site_probabilities(t) for t in result.temperatures}
    blob = json.dumps(data, separators=(",", ":")).encode()
    if blob == raw:
        return None
    if write:
        atomic_write_bytes(path, lambda fh: fh.write(blob))
    after = {t: _top(s) for t, s in data["site_probabilities"].items()}
    return {"system": path.stem, "minima_relabelled": changed,
            "kinds": [f"{old_kinds[k]} -> {result.minima[k].site_kind}" for k in changed],
            "top_before": before, "top_after": after,
            "top_changed": sorted(t for t in after if before.get(t) != after[t])}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("files", nargs="+", type=Path, help="ReferenceResult JSON files")
    parser.add_argument("--dry-run", action="store_true", help="report, write nothing")
    args = parser.parse_args(argv)
    summary = {"files": len(args.files), "rewritten": 0, "minima_relabelled": 0, "top_changed": {}}
    for path in args.files:
        change = relabel_file(path, write=not args.dry_run)
        if change is None:
            continue
        print(json.dumps(change))
        summary["rewritten"] += 1
        summary["minima_relabelled"] += len(change["minima_relabelled"])
        for t in change["top_changed"]:
            summary["top_changed"][t] = summary["top_changed"].get(t, 0) + 1
    print(json.dumps(summary), file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
