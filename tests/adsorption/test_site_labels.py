"""One site-labelling rule (SiteAssigner) for reference minima, refined minima and samples.

Each hand-built case is one class of disagreement measured between the distance window
(``classify_site``, which used to label the reference minima) and the nearest-site-point rule
(``SiteAssigner``, which labels samples) on the committed CHGNet corpus; the window's answer is
asserted too, so that each case shows the disagreement it stands for.  Tags per OC20: 0 fixed,
1 surface, 2 adsorbate.
"""

from __future__ import annotations

import collections
import json
from pathlib import Path

import numpy as np
import pytest
from ase import Atoms
from ase.calculators.calculator import Calculator, all_changes
from ase.build import fcc100, fcc111, fcc211

from digmat.adsorption import (
    PlacementRecord,
    ReferenceMinimum,
    ReferenceResult,
    SiteAssigner,
    classify_site,
    convert_ase_tags,
    get_adsorbate,
    infer_tags,
    reference_search,
    relabel_sites,
)
from digmat.tasks.sampling import summarise_sites

RESULTS = Path(__file__).resolve().parents[2] / "data" / "corpus" / "results"


def _with_atom(slab: Atoms, symbol: str, position) -> Atoms:
    system = slab.copy()
    system += Atoms(symbol, positions=[position], tags=[2])
    return system


def _site_xy(slab: Atoms, site: str, offset=(1, 1)) -> np.ndarray:
    info = slab.info["adsorbate_info"]
    return (np.asarray(info["sites"][site]) + offset) @ info["cell"]


def _top_layer(slab: Atoms) -> np.ndarray:
    return np.flatnonzero(slab.get_tags() == 1)


def _nearest_surface_atoms(slab: Atoms, xy: np.ndarray, n: int) -> np.ndarray:
    """Positions of the n surface atoms nearest in-plane to xy (lattice images included)."""
    top = _top_layer(slab)
    shifts = np.array([(i, j, 0) for i in (-1, 0, 1) for j in (-1, 0, 1)]) @ slab.cell.array
    images = (slab.positions[top][None] + shifts[:, None]).reshape(-1, 3)
    d = np.linalg.norm(images[:, :2] - xy, axis=1)
    return images[np.argsort(d)[:n]]


def _labels(slab: Atoms, system: Atoms) -> tuple[str, str]:
    """(distance window, SiteAssigner) kinds of the last atom."""
    last = len(system) - 1
    return classify_site(system, last).kind, SiteAssigner(slab).assign(system, last).kind


@pytest.fixture(scope="module")
def pt111():
    return convert_ase_tags(fcc111("Pt", (3, 3, 4), vacuum=10.0))


def test_o_in_fcc_hollow_relaxed_toward_a_bridge_is_a_hollow(pt111):
    """O 1.2 Å above an fcc hollow of Pt(111), moved 0.3 Å toward one of its bridges (of the
    0.80 Å from hollow to bridge): two Pt at 1.90 Å, the third at 2.24 Å (ratio 1.18 > 1.15),
    so the window says bridge; the O is nearer the hollow's point (27 corpus minima were
    window-bridge but nearest a hollow point, e.g. OH on Au(111) and Rh(111))."""
    xy = _site_xy(pt111, "fcc")
    a, b, _ = _nearest_surface_atoms(pt111, xy, 3)
    toward = (a[:2] + b[:2]) / 2 - xy
    point = np.append(xy + 0.3 * toward / np.linalg.norm(toward), pt111.positions[:, 2].max() + 1.2)
    system = _with_atom(pt111, "O", point)
    assert _labels(pt111, system) == ("bridge", "hollow-fcc")


def test_h_in_hollow_moved_toward_one_atom_is_a_hollow(pt111):
    """H 1.0 Å above the hcp hollow, 0.32 Å toward one of its atoms — CHGNet's H minima on
    Pt(111): one Pt at 1.63 Å, two at 2.1 Å, which the window calls ontop."""
    xy = _site_xy(pt111, "hcp")
    a = _nearest_surface_atoms(pt111, xy, 1)[0]
    toward = a[:2] - xy
    point = np.append(xy + 0.32 * toward / np.linalg.norm(toward), pt111.positions[:, 2].max() + 1.0)
    system = _with_atom(pt111, "H", point)
    assert _labels(pt111, system) == ("ontop", "hollow-hcp")


def test_asymmetric_bridge_on_100_is_a_bridge():
    """H 1.07 Å above a bridge of Rh(100), 0.4 Å toward one of its atoms (CHGNet's H on
    Rh(100), Pt3Rh(100), Cu3Pt(100)): Rh at 1.59 and 1.96 Å — window ontop, site bridge."""
    slab = convert_ase_tags(fcc100("Rh", (3, 3, 4), vacuum=10.0))
    xy = _site_xy(slab, "bridge")
    a = _nearest_surface_atoms(slab, xy, 1)[0]
    toward = a[:2] - xy
    point = np.append(xy + 0.4 * toward / np.linalg.norm(toward), slab.positions[:, 2].max() + 1.07)
    assert _labels(slab, _with_atom(slab, "H", point)) == ("ontop", "bridge")


def test_o_off_centre_in_a_100_hollow_is_4fold_not_hcp():
    """O 0.9 Å above the 4-fold hollow of Pt(100), 0.25 Å toward one corner: three Pt within
    the window, with the second-layer atom under their centroid, so the window says
    "hollow-hcp" — a site fcc(100) does not have (O on Au, Pd, Pt3Ni, Pd3Au, Cu3Pt(100): 10
    corpus minima, most probable at 300 K on five of these surfaces)."""
    slab = convert_ase_tags(fcc100("Pt", (3, 3, 4), vacuum=10.0))
    xy = _site_xy(slab, "hollow")
    a = _nearest_surface_atoms(slab, xy, 1)[0]
    toward = a[:2] - xy
    point = np.append(xy + 0.25 * toward / np.linalg.norm(toward), slab.positions[:, 2].max() + 0.9)
    assert _labels(slab, _with_atom(slab, "O", point)) == ("hollow-hcp", "4-fold")


def test_alloy_hollow_with_unequal_bonds_is_4fold():
    """A checkerboard Cu/Au top layer on Cu3Au's lattice (a = 3.75 Å): O 1.0 Å above the 4-fold
    hollow, 0.6 Å toward a Cu — Cu at 1.62 Å, the two Au at 2.21 Å, outside the relative window,
    which says ontop (CHGNet's O on Cu3Au(100): Cu 1.89 Å, Au 2.22 and 2.29 Å)."""
    slab = convert_ase_tags(fcc100("Cu", (2, 2, 4), a=3.75, vacuum=10.0))
    top = _top_layer(slab)
    frac = slab.get_scaled_positions()[top, :2]
    checker = np.round(frac * 2).astype(int).sum(axis=1) % 2 == 1
    numbers = slab.numbers.copy()
    numbers[top[checker]] = 79
    slab.numbers = numbers
    xy = _site_xy(slab, "hollow", offset=(0, 0))
    corners = _nearest_surface_atoms(slab, xy, 4)
    cu = next(c for c in corners if slab.numbers[np.argmin(np.linalg.norm(slab.positions - c, axis=1))] == 29)
    toward = cu[:2] - xy
    point = np.append(xy + 0.6 * toward / np.linalg.norm(toward), slab.positions[:, 2].max() + 1.0)
    system = _with_atom(slab, "O", point)
    assert _labels(slab, system) == ("ontop", "4-fold")
    assert SiteAssigner(slab).assign(system, len(system) - 1).binding_symbols == ["Au", "Au", "Cu", "Cu"]


def test_off_top_single_bond_goes_to_the_nearer_bridge():
    """The convention for a minimum between site points: C bonded to one Pd (2.06 Å) but 0.9 Å
    off the atom toward a bridge (1.38 Å away) is nearer the bridge point — ``bridge`` (CH3 on
    Pd, Rh, Ag(111) in the corpus).  The kind says which site's region the atom is in."""
    slab = convert_ase_tags(fcc111("Pd", (3, 3, 4), vacuum=10.0))
    top = slab.positions[_top_layer(slab)[4]]
    xy = _site_xy(slab, "bridge", offset=(0, 0))
    bridge = min((xy + np.array(s) @ slab.cell.array[:2, :2] for s in np.ndindex(3, 3)),
                 key=lambda p: np.linalg.norm(p - top[:2]))
    toward = bridge - top[:2]
    point = np.append(top[:2] + 0.9 * toward / np.linalg.norm(toward), top[2] + 1.85)
    assert _labels(slab, _with_atom(slab, "C", point)) == ("ontop", "bridge")


@pytest.fixture(scope="module")
def pt211():
    return infer_tags(fcc211("Pt", (3, 3, 4), vacuum=10.0))


def test_211_site_points_have_their_kinds(pt211):
    """fcc(211): three tops (step edge, terrace, step foot), six bridges, an fcc and an hcp hollow
    on each of the two triangle rows of the (111) terrace, and the 4-fold hollow of the (100)
    step facet — the distance window at each point of pymatgen's site finder.  (Classified
    1.5 Å above the point along the slab normal, as before, a (211) slab had no hollows at all.)
    An hcp hollow has a second-layer atom under it along the terrace normal; an fcc one none."""
    assigner = SiteAssigner(pt211)
    distinct = collections.Counter(key[0] for key in set(assigner.point_keys))
    assert distinct == {"ontop": 3, "bridge": 6, "hollow-fcc": 2, "hollow-hcp": 2, "4-fold": 1}
    shifts = np.array([(i, j, 0) for i in (-1, 0, 1) for j in (-1, 0, 1)]) @ pt211.cell.array
    images = (pt211.positions[None] + shifts[:, None]).reshape(-1, 3)
    for point, info, key in zip(assigner.points, assigner.point_infos, assigner.point_keys, strict=True):
        if not key[0].startswith("hollow"):
            continue
        corners = images[np.argsort(np.linalg.norm(images - point, axis=1))[:3]]
        normal = np.cross(corners[1] - corners[0], corners[2] - corners[0])
        normal = normal / np.linalg.norm(normal) * np.sign(normal[2])
        assert np.degrees(np.arccos(normal[2])) == pytest.approx(19.47, abs=0.1)  # the (111) terrace
        rel = images - point
        depth = -(rel @ normal)
        lateral = np.linalg.norm(rel + np.outer(depth, normal), axis=1)
        below = (depth > 1.0) & (depth < 3.0)
        assert (lateral[below].min() < 0.1) == (key[0] == "hollow-hcp")


def test_211_terrace_hollows_are_measured_down_the_terrace_normal(pt211):
    """O 1.4 Å above each terrace hollow along the terrace's own normal is in that hollow (the
    window agrees: three equal bonds).  Seen down the slab normal it appears 0.47 Å downhill,
    beyond the middle of the 0.80 Å from the hollow to a bridge, so an in-plane nearest-point
    rule calls at least one of them a bridge."""
    assigner = SiteAssigner(pt211)
    inplane_wrong = 0
    for point, key in zip(assigner.points, assigner.point_keys, strict=True):
        if not key[0].startswith("hollow"):
            continue
        shifts = np.array([(i, j, 0) for i in (-1, 0, 1) for j in (-1, 0, 1)]) @ pt211.cell.array
        images = (pt211.positions[None] + shifts[:, None]).reshape(-1, 3)
        corners = images[np.argsort(np.linalg.norm(images - point, axis=1))[:3]]
        normal = np.cross(corners[1] - corners[0], corners[2] - corners[0])
        normal = normal / np.linalg.norm(normal) * np.sign(normal[2])
        system = _with_atom(pt211, "O", point + 1.4 * normal)
        got = assigner.assign(system, len(system) - 1)
        assert got.key == key and classify_site(system, len(system) - 1).kind == key[0]
        d = (system.positions[-1] - assigner.points) @ np.linalg.inv(pt211.cell.array)
        d[:, :2] -= np.round(d[:, :2])
        inplane = np.linalg.norm((d @ pt211.cell.array)[:, :2], axis=1)
        inplane_wrong += assigner.point_keys[int(np.argmin(inplane))][0] != key[0]
    assert inplane_wrong > 0


def test_site_points_follow_the_relaxed_surface(pt111):
    """Points are centroids of their atoms as they sit in the configuration: a top atom pulled
    0.4 Å out of the surface with an H 1.56 Å above it is still the H's ontop site."""
    assigner = SiteAssigner(pt111)
    system = pt111.copy()
    atom = _top_layer(pt111)[4]
    system.positions[atom, 2] += 0.4
    system = _with_atom(system, "H", system.positions[atom] + [0.3, 0.0, 1.53])
    got = assigner.assign(system, len(system) - 1)
    assert got.kind == "ontop" and got.binding_atoms == [atom]
    other = convert_ase_tags(fcc111("Pd", (3, 3, 4), vacuum=10.0))
    with pytest.raises(ValueError, match="does not start with this slab"):
        assigner.assign(_with_atom(other, "H", other.positions[atom] + [0.0, 0.0, 1.6]), len(other))


def test_reference_refined_and_sampled_labels_are_one_rule(pt111):
    """A reference result whose minima carry window labels: relabel_sites gives each minimum
    (and the placements merged into it) the kind SiteAssigner gives the stored structure, which
    is what summarise_sites reports for the same structure as a sample."""
    xy = _site_xy(pt111, "fcc")
    a, b, _ = _nearest_surface_atoms(pt111, xy, 3)
    toward = (a[:2] + b[:2]) / 2 - xy
    hollow = _with_atom(pt111, "O", np.append(xy + 0.3 * toward / np.linalg.norm(toward), pt111.positions[:, 2].max() + 1.2))
    off_top = _with_atom(pt111, "O", pt111.positions[_top_layer(pt111)[0]] + [0.2, 0.0, 2.0])
    n = len(pt111)
    minima = []
    for k, system in enumerate((hollow, off_top)):
        window = classify_site(system, n)
        minima.append(ReferenceMinimum(atoms=system, energy=-1.0 + k, site_kind=window.kind,
                                       binding_atoms=list(window.binding_atoms),
                                       binding_symbols=list(window.binding_symbols), adsorbate_atom=n,
                                       site_key=f"k{k}", placements=[k]))
    placements = [PlacementRecord(k, "heuristic", "hollow", site_kind=m.site_kind, minimum=k) for k, m in enumerate(minima)]
    result = ReferenceResult(slab=pt111, adsorbate=get_adsorbate("O"), calculator="test", temperatures=(300.0,),
                             minima=minima, placements=placements)
    assert [m.site_kind for m in minima] == ["bridge", "ontop"]
    assert relabel_sites(result) == [0]
    sites, labels = summarise_sites(pt111, [hollow, off_top], n)
    assert [m.site_kind for m in result.minima] == [sites[label].kind for label in labels] == ["hollow-fcc", "ontop"]
    assert [p.site_kind for p in result.placements] == ["hollow-fcc", "ontop"]
    assert sorted(result.minima[0].binding_symbols) == sites[labels[0]].binding_symbols == ["Pt", "Pt", "Pt"]
    assert relabel_sites(result) == []  # idempotent


class _Flat(Calculator):
    """Zero energy and forces everywhere: every placement is its own converged "minimum"."""

    implemented_properties = ["energy", "forces"]

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        self.results = {"energy": 0.0, "forces": np.zeros((len(self.atoms), 3))}


def test_reference_search_labels_minima_with_the_site_assigner(pt111):
    """reference_search records SiteAssigner's kind and site atoms: given placements that stay
    put (a flat potential), the O moved from an fcc hollow toward a bridge is a ``hollow-fcc``
    minimum, not the window's ``bridge``."""
    xy = _site_xy(pt111, "fcc")
    a, b, _ = _nearest_surface_atoms(pt111, xy, 3)
    toward = (a[:2] + b[:2]) / 2 - xy
    hollow = _with_atom(pt111, "O", np.append(xy + 0.3 * toward / np.linalg.norm(toward), pt111.positions[:, 2].max() + 1.2))
    on_top = _with_atom(pt111, "O", pt111.positions[_top_layer(pt111)[0]] + [0.0, 0.0, 1.9])
    result = reference_search(pt111, "O", _Flat(), placements=[hollow, on_top], vibrations=False)
    assert sorted(m.site_kind for m in result.minima) == ["hollow-fcc", "ontop"]
    assigner = SiteAssigner(pt111)
    for m in result.minima:
        site = assigner.assign(m.atoms, m.adsorbate_atom)
        assert m.site_kind == site.kind and sorted(m.binding_atoms) == sorted(site.binding_atoms)
        assert m.binding_symbols == ["Pt"] * len(m.binding_atoms)
    assert sorted(p.site_kind for p in result.placements) == ["hollow-fcc", "ontop"]


@pytest.mark.skipif(not RESULTS.is_dir() or not any(RESULTS.glob("*.json")), reason="corpus results not present")
def test_corpus_site_labels_are_the_site_assigners():
    """Every committed corpus result stores SiteAssigner's labels of its stored minima (kind,
    site atoms and symbols), and ``site_probabilities`` sums the minima's probabilities per kind.
    (Placements' relaxed structures are not stored, so their kinds are not checked here.)"""
    mismatches = []
    assigners: dict[bytes, SiteAssigner] = {}   # one per distinct slab (ten adsorbates share Pt(111))
    for path in sorted(RESULTS.glob("*.json")):
        raw = json.loads(path.read_text())
        result = ReferenceResult.from_dict(raw)
        if not result.minima:
            continue
        slab = result.slab
        key = (slab.numbers.tobytes() + slab.positions.round(6).tobytes() + slab.cell.array.round(6).tobytes()
               + slab.get_tags().tobytes())
        if key not in assigners:
            assigners[key] = SiteAssigner(slab)
        assigner = assigners[key]
        for k, m in enumerate(result.minima):
            site = assigner.assign(m.atoms, m.adsorbate_atom)
            symbols = m.atoms.get_chemical_symbols()
            if (m.site_kind != site.kind or sorted(m.binding_atoms) != sorted(site.binding_atoms)
                    or m.binding_symbols != [symbols[i] for i in m.binding_atoms]):
                mismatches.append(f"{path.stem} #{k}: stored {m.site_kind} {m.binding_atoms}, "
                                  f"SiteAssigner {site.kind} {site.binding_atoms}")
        for t, stored in raw["site_probabilities"].items():
            summed: dict[str, float] = {}
            for m in raw["minima"]:
                summed[m["site_kind"]] = summed.get(m["site_kind"], 0.0) + m["probability"][t]
            for kind in set(summed) | set(stored):
                if abs(summed.get(kind, 0.0) - stored.get(kind, 0.0)) > 1e-4:
                    mismatches.append(f"{path.stem} site_probabilities[{t}][{kind}]")
    assert not mismatches, "\n".join(mismatches[:20]) + "\n(rerun recipes/relabel_corpus_sites.py)"


@pytest.mark.skipif(not (RESULTS / "Pt-111-H.json").is_file(), reason="corpus results not present")
def test_relabel_recipe_restores_labels_and_touches_nothing_else(tmp_path, load_recipe):
    """recipes/relabel_corpus_sites.py on a copy whose minima carry the old window labels
    (CHGNet's H on Pt(111): "ontop" 0.3 Å from the hollows' centres) gives back the committed
    file byte for byte, and leaves a file that is already right unwritten."""
    recipe = load_recipe("relabel_corpus_sites")
    committed = (RESULTS / "Pt-111-H.json").read_bytes()
    data = json.loads(committed)
    n = len(data["slab"]["numbers"])
    result = ReferenceResult.from_dict(data)
    stale = [k for k, m in enumerate(result.minima)
             if classify_site(m.atoms, n).kind != m.site_kind]
    assert stale  # this system is one where the two rules disagree
    for k in stale:
        window = classify_site(result.minima[k].atoms, n)
        data["minima"][k].update(site_kind=window.kind, binding_atoms=list(window.binding_atoms),
                                 binding_symbols=list(window.binding_symbols))
        for p in data["placements"]:
            if p.get("minimum") == k:
                p["site_kind"] = window.kind
    path = tmp_path / "Pt-111-H.json"
    path.write_text(json.dumps(data, separators=(",", ":")))
    change = recipe.relabel_file(path)
    assert change["minima_relabelled"] == stale
    assert path.read_bytes() == committed
    assert recipe.relabel_file(path) is None
