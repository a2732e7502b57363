"""Extract OC20's 86-adsorbate table into digmat's plain JSON data file.

The Open Catalyst 2020 adsorbate table ships as a pickle inside the
``fairchem-data-oc`` wheel (MIT licence, Meta Platforms, Inc.).  Its Python
API imports more than we want at run time, so digmat reads a compact,
version-controlled JSON copy instead.  This script regenerates that copy:

    pip download fairchem-data-oc==1.0.2 --no-deps -d /tmp/fdo
    python recipes/extract_oc20_adsorbates.py /tmp/fdo/fairchem_data_oc-1.0.2-py2.py3-none-any.whl

The source may be the wheel itself or an extracted ``adsorbates.pkl``.  The
pickle holds ``{index: (ase.Atoms, smiles, binding_indices, reaction_html)}``;
unpickling it only needs ase and numpy.  Only run it on the genuine wheel:
pickles can execute code.
"""

from __future__ import annotations

import argparse
import hashlib
import html
import json
import pickle
import re
import sys
import zipfile
from pathlib import Path

PKL_IN_WHEEL = "fairchem/data/oc/databases/pkls/adsorbates.pkl"
LICENSE_IN_WHEEL = "fairchem/data/oc/LICENSE.md"
DEFAULT_OUT = Path(__file__).resolve().parents[1] / "digmat" / "data" / "oc20_adsorbates.json"


def _load(source: Path) -> tuple[bytes, str | None, str]:
    """(pickle bytes, licence text or None, description of the source)."""
    if source.suffix == ".whl":
        with zipfile.ZipFile(source) as zf:
            blob = zf.read(PKL_IN_WHEEL)
            licence = zf.read(LICENSE_IN_WHEEL).decode() if LICENSE_IN_WHEEL in zf.namelist() else None
        return blob, licence, f"{source.name}:{PKL_IN_WHEEL}"
    licence_path = source.parents[2] / "LICENSE.md" if len(source.parents) > 2 else None
    licence = licence_path.read_text() if licence_path and licence_path.exists() else None
    return source.read_bytes(), licence, source.name


def _plain_reaction(text: str) -> str:
    text = re.sub(r"</?sub>", "", text)
    return html.unescape(text).replace("\u2192", "->")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path, help="fairchem-data-oc wheel or adsorbates.pkl")
    parser.add_argument("-o", "--output", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)

    blob, licence, origin = _load(args.source)
    table = pickle.loads(blob)  # trusted: the official wheel
    entries = []
    for idx in sorted(table):
        atoms, smiles, binding, *rest = table[idx]
        entries.append(
            {
                "id": int(idx),
                "name": str(smiles),
                "formula": atoms.get_chemical_formula(mode="hill"),
                "symbols": atoms.get_chemical_symbols(),
                "positions": [[float(x) for x in row] for row in atoms.positions],
                "binding_indices": [int(i) for i in binding],
                "reaction": _plain_reaction(rest[0]) if rest else "",
            }
        )
    doc = {
        "description": (
            "Open Catalyst 2020 (OC20) adsorbate table: geometry (Å), name (OC20's "
            "SMILES-like string, '*' marks binding atoms), binding atom indices and "
            "formation reaction, one entry per OC20 adsorbate index."
        ),
        "source": f"PyPI fairchem-data-oc ({origin})",
        "source_sha256": hashlib.sha256(blob).hexdigest(),
        "license": "MIT",
        "license_text": licence or "MIT License, Copyright (c) Meta Platforms, Inc. and affiliates.",
        "generated_by": "recipes/extract_oc20_adsorbates.py",
        "adsorbates": entries,
    }
    # One adsorbate per line: compact, and diffs stay readable.
    header = json.dumps({k: v for k, v in doc.items() if k != "adsorbates"}, indent=1)[:-2]
    rows = ",\n  ".join(json.dumps(e, separators=(",", ":")) for e in entries)
    args.output.write_text(f'{header},\n "adsorbates": [\n  {rows}\n ]\n}}\n')
    print(f"wrote {len(entries)} adsorbates to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
