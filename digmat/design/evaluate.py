"""Quality checks of generated crystals: validity, matching, uniqueness, novelty, symmetry, gaps.

* **Validity**: no interatomic distance (lattice images included) below ``min_distance``
  (0.5 Å, CDVAE's criterion) and a mass density in ``density_range`` (1–5 g/cm³: graphite is
  2.26, diamond 3.51).
* **Match rate** against a reference set (the training structures): the share of samples for
  which pymatgen's ``StructureMatcher`` finds a reference structure, and the mean over matched
  samples of the smallest normalised r.m.s. displacement (``get_rms_dist``: r.m.s. over sites /
  (V/N)^(1/3)). Two matchers: CDVAE's loose ``ltol=0.3, stol=0.5, angle_tol=10`` and pymatgen's
  defaults (``0.2, 0.3, 5``). Structures are reduced once (primitive + Niggli) and compared
  only with references of the same reduced size and composition — exact, since the matcher
  (without ``attempt_supercell``) never matches different reduced sizes.
* **Uniqueness**: distinct valid samples (loose matcher) / valid samples.
  **Novelty**: distinct valid samples without a loose match in the reference / distinct valid samples.
* **Space groups**: spglib (``symprec=0.1`` Å).
* **Gaps**: the share of samples whose oracle gap exceeds ``GAPPED`` (0.5 eV); with the reference
  set's gaps, also the gap of each sample's closest loose match — the structure the sample is
  a (noisy) copy of — which separates *which* structures a model generates from *how precisely*
  it generates them (a tight-binding gap closes under a few hundredths of an Å of disorder).
"""

from __future__ import annotations

import warnings
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np
from ase import Atoms

__all__ = ["BOND_CUTOFF", "GAPPED", "LOOSE", "STRICT", "Matcher", "coordination_numbers", "evaluate_samples", "is_valid",
           "nearest_neighbor_distances", "nn_distance_quantiles", "plot_gap_histograms", "relax", "space_group", "sp3_share"]

LOOSE = {"ltol": 0.3, "stol": 0.5, "angle_tol": 10.0}
"""CDVAE's StructureMatcher tolerances."""
STRICT = {"ltol": 0.2, "stol": 0.3, "angle_tol": 5.0}
"""pymatgen's default StructureMatcher tolerances."""
BOND_CUTOFF = 1.85
"""Å: two carbon atoms closer than this are bonded (C–C bonds 1.2–1.6 Å, second neighbours ≥ 2.4 Å)."""
GAPPED = 0.5
"""eV: a band gap above this counts as gapped (non-metallic)."""


def is_valid(atoms: Atoms, *, min_distance: float = 0.5, density_range: tuple[float, float] = (1.0, 5.0)) -> tuple[bool, str]:
    """(valid, reason): reason is "" or why not ("density x g/cm3", "distance < 0.5 Å", ...)."""
    from ase.neighborlist import neighbor_list

    cell = np.asarray(atoms.cell.array)
    if not (np.isfinite(cell).all() and np.isfinite(atoms.positions).all()):
        return False, "non-finite coordinates"
    volume = abs(np.linalg.det(cell))
    if volume < 1e-6:
        return False, "singular cell"
    density = atoms.get_masses().sum() / volume * 1.66053906660  # amu/Å^3 -> g/cm^3
    if not density_range[0] <= density <= density_range[1]:
        return False, f"density {density:.2f} g/cm3"
    if len(neighbor_list("i", atoms, min_distance, self_interaction=False)):
        return False, f"distance < {min_distance} Å"
    return True, ""


def nearest_neighbor_distances(atoms: Atoms, *, cutoff: float = 4.0) -> np.ndarray:
    """Distance from every atom to its nearest neighbour, periodic images included, (N,) Å.

    NaN for an atom with no neighbour within ``cutoff`` Å. For relaxed carbon these are bond
    lengths (Carbon-24: 1.37-1.51 Å between the 10th and 90th percentiles); a generated
    structure's distribution shows how well its local geometry is resolved.
    """
    from ase.neighborlist import neighbor_list

    i, d = neighbor_list("id", atoms, cutoff, self_interaction=False)
    out = np.full(len(atoms), np.inf)
    np.minimum.at(out, i, d)
    out[np.isinf(out)] = np.nan
    return out


def coordination_numbers(atoms: Atoms, *, cutoff: float = BOND_CUTOFF) -> np.ndarray:
    """Neighbours of every atom within ``cutoff`` Å, periodic images included, (N,) int."""
    from ase.neighborlist import neighbor_list

    return np.bincount(neighbor_list("i", atoms, cutoff, self_interaction=False), minlength=len(atoms))


def sp3_share(atoms: Atoms, *, cutoff: float = BOND_CUTOFF) -> float:
    """Share of a carbon structure's atoms with four bonds (within ``cutoff`` Å): its sp³ fraction.

    Gapped carbon is sp³-rich (diamond: 1); three-fold (sp²) atoms bring π bands to the Fermi
    level (graphite: 0). Carbon-24's 576 training structures: 0.63 on average, 0.86 for the gapped
    ones (TB gap > 0.5 eV), 0.46 for the others.
    """
    return float(np.mean(coordination_numbers(atoms, cutoff=cutoff) == 4)) if len(atoms) else 0.0


def nn_distance_quantiles(structures: Sequence[Atoms], quantiles: Sequence[float] = (0.1, 0.5, 0.9)) -> list[float]:
    """Quantiles of the nearest-neighbour distances of every atom of ``structures``, Å."""
    nn = np.concatenate([nearest_neighbor_distances(a) for a in structures])
    return [float(q) for q in np.nanquantile(nn, quantiles)]


class Matcher:
    """Match structures against a fixed reference set with one set of tolerances.

    Parameters
    ----------
    reference
        Reference crystals (e.g. the training set).
    ltol, stol, angle_tol
        StructureMatcher tolerances; other options are pymatgen's defaults
        (``primitive_cell=True, scale=True, attempt_supercell=False``).
    """

    def __init__(self, reference: Sequence[Atoms], *, ltol: float, stol: float, angle_tol: float):
        from pymatgen.analysis.structure_matcher import StructureMatcher

        self._reduce_with = StructureMatcher(ltol=ltol, stol=stol, angle_tol=angle_tol)
        self.matcher = StructureMatcher(ltol=ltol, stol=stol, angle_tol=angle_tol, primitive_cell=False)
        self.reference = list(reference)
        self.buckets: dict[tuple, list] = {}
        for index, s in enumerate(map(self.reduce, self.reference)):
            self.buckets.setdefault(self._key(s), []).append((index, s))

    def reduce(self, atoms: Atoms):
        """Primitive, Niggli-reduced pymatgen Structure (once per structure)."""
        from digmat.design.structures import to_structure

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return self._reduce_with._get_reduced_structure(to_structure(atoms), True, niggli=True)

    @staticmethod
    def _key(structure) -> tuple:
        return structure.composition.reduced_formula, len(structure)

    def best_match(self, atoms: Atoms) -> tuple[float, int] | None:
        """(normalised r.m.s. distance, index in the reference set) of the closest matching
        reference structure; None if none matches."""
        s = self.reduce(atoms)
        best = None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for index, ref in self.buckets.get(self._key(s), []):
                result = self.matcher.get_rms_dist(s, ref)
                if result is not None and (best is None or result[0] < best[0]):
                    best = (float(result[0]), index)
        return best

    def best_rms(self, atoms: Atoms) -> float | None:
        """Smallest normalised r.m.s. distance to a matching reference structure, None if none matches."""
        best = self.best_match(atoms)
        return None if best is None else best[0]


def space_group(atoms: Atoms, symprec: float = 0.1) -> tuple[int, str]:
    """(international number, symbol) by spglib; (0, "") if spglib fails."""
    import spglib

    cell = (np.asarray(atoms.cell.array), atoms.get_scaled_positions(), atoms.numbers)
    try:
        with warnings.catch_warnings():  # spglib 2.5+ warns about its legacy error handling
            warnings.simplefilter("ignore", DeprecationWarning)
            dataset = spglib.get_symmetry_dataset(cell, symprec=symprec)
    except Exception:  # noqa: BLE001 - spglib raises (new handling) on degenerate cells
        dataset = None
    if dataset is None:
        return 0, ""
    return int(dataset.number), str(dataset.international)


def relax(structures: Sequence[Atoms], calculator, *, fmax: float = 0.05, steps: int = 200) -> list[Atoms]:
    """Relax positions and cell (FIRE on a FrechetCellFilter, ``fmax`` in eV/Å, at most ``steps``).

    ``calculator`` is a digmat calculator name (``"chgnet"``, ``"emt"``...) or an ASE
    ``Calculator`` to reuse. The inputs are not modified; the relaxed copies carry no calculator.
    """
    from ase.filters import FrechetCellFilter
    from ase.optimize import FIRE

    from digmat.calculators import get_calculator

    calc = get_calculator(calculator) if isinstance(calculator, str) else calculator
    out = []
    for atoms in structures:
        a = atoms.copy()
        a.calc = calc
        FIRE(FrechetCellFilter(a), logfile=None).run(fmax=fmax, steps=steps)
        a.calc = None
        out.append(a)
    return out


def evaluate_samples(samples: Sequence[Atoms], gaps: Sequence[float], *, reference: dict[str, Matcher] | None = None, target: float | None = None,
                     window: float = 0.5, generated: Sequence[Atoms] | None = None,
                     reference_gaps: Sequence[float] | None = None) -> dict[str, Any]:
    """Summary figures of one set of samples.

    Parameters
    ----------
    samples
        The (possibly relaxed) crystals.
    gaps
        Oracle band gap of every sample, eV (NaN where not computed, e.g. invalid samples).
    reference
        Matchers against the reference set by name (e.g. ``{"loose": ..., "strict": ...}``).
    target
        Band-gap target; adds the share of all samples within ``target ± window``.
    generated
        The unrelaxed samples when ``samples`` were relaxed: adds the match rate and r.m.s.
        distance between each sample and its own relaxed structure (DiG's criterion).
    reference_gaps
        Oracle gap of every reference structure, eV (same order as the matchers' reference):
        adds per sample ``matched_gap`` (that of its closest loose match) and the shares below.

    Returns
    -------
    dict with validity, ``match_rate_<name>`` / ``mean_rms_<name>`` per reference, uniqueness,
    novelty, space groups, gap statistics, ``nn_distance_quantiles`` (10/50/90 % of the valid
    samples' nearest-neighbour distances, Å), ``gapped_share`` (gap > :data:`GAPPED`, of all
    samples), the share within ``target ± window`` and ``samples`` (one dict per sample). With
    ``reference_gaps``: ``matched_gapped_share`` (loose-matched samples whose match is gapped),
    ``gapped_share_of_gapped_matches`` (of those, the ones gapped themselves) and, with a target,
    ``matched_share_within_window`` (all samples whose match lies within ``target ± window``).
    ``sp3_share``: the mean sp³ fraction of the valid samples (:func:`sp3_share`; per sample too);
    with a loose reference, ``sp3_share_of_matched`` and ``matched_sp3_share``: that of the matched
    samples and of the structures they match (per sample ``matched_sp3_share``).
    """
    from digmat.design.structures import distinct_structures

    n = len(samples)
    gaps = np.asarray(gaps, dtype=float)
    checks = [is_valid(a) for a in samples]
    valid = [i for i, (ok, _) in enumerate(checks) if ok]
    out: dict[str, Any] = {"n": n, "n_valid": len(valid), "validity": len(valid) / n if n else 0.0,
                           "invalid_reasons": dict(Counter(r.split(" ")[0] for ok, r in checks if not ok))}
    per_sample: list[dict[str, Any]] = [{"valid": ok, "gap": None if np.isnan(g) else float(g)} for (ok, _), g in zip(checks, gaps)]
    for i, a in enumerate(samples):
        per_sample[i].update(num_atoms=len(a), volume_per_atom=float(a.get_volume() / len(a)) if checks[i][0] else None,
                             sp3_share=sp3_share(a) if checks[i][0] else None)
    for name, matcher in (reference or {}).items():
        best = [matcher.best_match(samples[i]) if i in set(valid) else None for i in range(n)]
        matched = [b[0] for b in best if b is not None]
        out[f"match_rate_{name}"] = len(matched) / n if n else 0.0
        out[f"mean_rms_{name}"] = float(np.mean(matched)) if matched else None
        for i, b in enumerate(best):
            per_sample[i][f"rms_{name}"] = None if b is None else b[0]
        if name == "loose":  # how bonded the samples are beside the structures they match
            for i, b in enumerate(best):
                per_sample[i]["matched_sp3_share"] = None if b is None else sp3_share(matcher.reference[b[1]])
            both = np.array([(per_sample[i]["sp3_share"], per_sample[i]["matched_sp3_share"]) for i, b in enumerate(best) if b is not None])
            out["sp3_share_of_matched"], out["matched_sp3_share"] = (float(v) for v in both.mean(0)) if len(both) else (None, None)
        if name == "loose" and reference_gaps is not None:
            for i, b in enumerate(best):
                per_sample[i]["matched_gap"] = None if b is None else float(reference_gaps[b[1]])
            pairs = np.array([(per_sample[i]["matched_gap"], gaps[i]) for i in range(n) if best[i] is not None]).reshape(-1, 2)
            intends = pairs[:, 0] > GAPPED
            out["matched_gapped_share"] = float(intends.mean()) if len(pairs) else None
            out["gapped_share_of_gapped_matches"] = float((pairs[intends, 1] > GAPPED).mean()) if intends.any() else None
            if target is not None:
                out["matched_share_within_window"] = float(np.sum(np.abs(pairs[:, 0] - target) <= window)) / n if n else 0.0
    if generated is not None:
        pairs = [Matcher([generated[i]], **LOOSE).best_rms(samples[i]) if i in set(valid) else None for i in range(n)]
        done = [r for r in pairs if r is not None]
        out["self_match_rate_loose"] = len(done) / n if n else 0.0
        out["self_mean_rms_loose"] = float(np.mean(done)) if done else None
    if valid:
        groups = distinct_structures([samples[i] for i in valid], **LOOSE)
        out["uniqueness"] = groups.n_distinct / len(valid)
        if reference and "loose" in reference:
            reps = [valid[g] for g in groups.representatives]
            out["novelty"] = float(np.mean([per_sample[i].get("rms_loose") is None for i in reps]))
    if valid:
        out["nn_distance_quantiles"] = nn_distance_quantiles([samples[i] for i in valid])
        out["sp3_share"] = float(np.mean([per_sample[i]["sp3_share"] for i in valid]))
    spg = [space_group(samples[i]) for i in valid]
    for i, (num, sym) in zip(valid, spg):
        per_sample[i].update(space_group=num, space_group_symbol=sym)
    out["space_groups"] = {f"{sym} ({num})": c for (num, sym), c in Counter(spg).most_common()}
    finite = gaps[np.isfinite(gaps)]
    out["gap_mean"] = float(finite.mean()) if len(finite) else None
    out["gapped_share"] = float(np.sum(finite > GAPPED)) / n if n else 0.0
    out["gap_quantiles"] = [float(q) for q in np.quantile(finite, [0.1, 0.5, 0.9])] if len(finite) else None
    if target is not None:
        out["target"] = target
        out["share_within_window"] = float(np.sum(np.abs(gaps - target) <= window)) / n if n else 0.0
    out["samples"] = per_sample
    return out


def plot_gap_histograms(gap_sets: dict[str, Sequence[float]], path, *, targets: dict[str, float] | None = None, bins: int = 30) -> None:
    """Normalised histograms of band gaps (eV), one per set (training, unguided, each target)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    finite = {k: np.asarray(v, float)[np.isfinite(np.asarray(v, float))] for k, v in gap_sets.items()}
    top = max([float(v.max()) for v in finite.values() if len(v)] + [1.0])
    edges = np.linspace(0.0, top * 1.02, bins + 1)
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    for name, values in finite.items():
        if len(values):
            ax.hist(values, bins=edges, density=True, histtype="step", linewidth=1.6, label=f"{name} (n={len(values)})")
    for name, c in (targets or {}).items():
        ax.axvline(c, linestyle="--", linewidth=0.8, color="grey")
    ax.set_xlabel("tight-binding band gap (eV)")
    ax.set_ylabel("density")
    ax.legend(fontsize=8)
    fig.tight_layout()
    from digmat.files import atomic_write_bytes

    atomic_write_bytes(path, lambda fh: fig.savefig(fh, format="png", dpi=120))
    plt.close(fig)
