"""Reference adsorption-site search: AdsorbML-style placements, relaxations, distinct minima.

Protocol (:func:`reference_search`):

1. placements — the adsorbate on each symmetry-distinct site of pymatgen's
   AdsorbateSiteFinder plus ``num_random`` random placements
   (:mod:`digmat.adsorption.placement`);
2. relaxation — ASE BFGS to ``fmax`` (0.05 eV/Å) in at most ``max_steps``
   (300) steps, subsurface fixed, in ``workers`` processes, every result
   cached on disk (:mod:`digmat.adsorption.relax`): rerunning an interrupted
   search redoes nothing;
3. anomalies — desorbed, dissociated, surface changed, intercalated
   (:mod:`digmat.adsorption.anomalies`) and unconverged relaxations are
   discarded;
4. de-duplication — two relaxed structures are the same minimum when every
   anchored adsorbate atom (the binding atoms and any atom within 1.25 × the
   sum of covalent radii of a slab atom) has the same
   :func:`~digmat.adsorption.equivalent_site_key` (symmetry and lattice
   translations) and their energies differ by at most ``energy_tolerance``
   (0.02 eV); the lowest-energy one represents the minimum.  Its site kind and
   site atoms are those :class:`~digmat.adsorption.SiteAssigner` gives the
   anchored atom closest to the surface — the rule that labels a model's
   samples and refined minima too;
5. thermochemistry — per minimum a finite-difference Hessian of the
   adsorbate atoms (optionally the free surface atoms too), harmonic
   ``F_vib(T)``, the number ``g`` of symmetry copies in the cell and
   ``p_i(T) ∝ g_i exp(−(E_i + F_vib,i(T))/k_B T)``
   (:mod:`digmat.adsorption.thermo`).  Stationary points with imaginary
   modes are reported with the flag ``"saddle"`` and get probability 0 (unless every
   stationary point found is one).

Units: Å, eV, K.
"""

from __future__ import annotations

import copy
import time
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms
from ase.data import covalent_radii

from digmat.adsorption.anomalies import detect_anomalies
from digmat.adsorption.placement import make_placements
from digmat.adsorption.relax import (
    CalculatorSpec,
    TaskRunner,
    calculator_name,
    check_calculator,
    fingerprint,
    load_cached,
)
from digmat.adsorption.result import PlacementRecord, ReferenceMinimum, ReferenceResult
from digmat.adsorption.search_config import ExecutionConfig, SearchConfig, split_settings
from digmat.adsorption.site_assignment import SiteAssigner
from digmat.adsorption.sites import SlabSymmetry, classify_site, equivalent_site_key
from digmat.adsorption.thermo import (
    VIB_FLOOR,
    site_multiplicity,
    symmetry_images,
    vibrational_analysis,
)

__all__ = ["PlacementRecord", "ReferenceMinimum", "ReferenceResult", "given_placements", "recompute_vibrations",
           "reference_search", "relabel_sites"]

ANCHOR_MULT = 1.25


def _anchored(atoms: Atoms, n_slab: int, binding: list[int]) -> list[int]:
    """Adsorbate atoms within ANCHOR_MULT × (r_cov + r_cov) of a slab atom, plus the binding atoms."""
    out = set(binding)
    slab_idx = list(range(n_slab))
    for a in range(n_slab, len(atoms)):
        d = atoms.get_distances(a, slab_idx, mic=True)
        limit = ANCHOR_MULT * (covalent_radii[atoms.numbers[a]] + covalent_radii[atoms.numbers[:n_slab]])
        if (d <= limit).any():
            out.add(a)
    return sorted(out)


def _site_label(assigner: SiteAssigner, atoms: Atoms, index: int) -> dict:
    """Site kind, site atoms (nearest to atom ``index`` first) and their symbols of adsorbate
    atom ``index`` (:class:`SiteAssigner`)."""
    site = assigner.assign(atoms, index)
    members = [int(i) for i in site.binding_atoms]
    if members:
        members = [members[k] for k in np.argsort(atoms.get_distances(index, members, mic=True), kind="stable")]
    symbols = atoms.get_chemical_symbols()
    return {"kind": site.kind, "binding_atoms": members, "binding_symbols": [symbols[i] for i in members]}


def _describe(relaxed: Atoms, slab: Atoms, symmetry: SlabSymmetry, assigner: SiteAssigner,
              binding: list[int]) -> dict:
    """Site label (:class:`SiteAssigner`) and de-duplication key (distance-window sites of every
    anchored atom) of a relaxed structure."""
    n = len(slab)
    anchors = _anchored(relaxed, n, binding)
    keys = []
    sites = {}
    for a in anchors:
        site = classify_site(relaxed, a)
        sites[a] = site
        keys.append((relaxed.get_chemical_symbols()[a], equivalent_site_key(slab, site, symmetry=symmetry)))
    # the site of the adsorbate atom closest to the surface (a binding atom when bound)
    bound = [a for a in anchors if sites[a].bound] or anchors
    lead = min(bound, key=lambda a: (a not in binding, min(sites[a].distances or (np.inf,))))
    return {"key": repr(sorted(keys)), **_site_label(assigner, relaxed, lead), "adsorbate_atom": int(lead)}


def relabel_sites(result: ReferenceResult) -> list[int]:
    """Relabel a result's minima from their stored structures with :class:`SiteAssigner`, in place.

    Each minimum's ``site_kind``, ``binding_atoms`` and ``binding_symbols`` become those of its
    ``adsorbate_atom`` (what :func:`reference_search` now records), and every placement that
    relaxed into a minimum takes the minimum's kind (the relaxed structures of merged placements
    are not stored; they share the minimum's de-duplication key).  No calculator is called;
    energies, probabilities and site keys are unchanged.

    Parameters
    ----------
    result : ReferenceResult

    Returns
    -------
    list of int
        Indices of the minima whose site kind changed.
    """
    if not result.minima:
        return []
    assigner = SiteAssigner(result.slab)
    changed = []
    for k, m in enumerate(result.minima):
        label = _site_label(assigner, m.atoms, m.adsorbate_atom)
        if label["kind"] != m.site_kind:
            changed.append(k)
        m.site_kind, m.binding_atoms, m.binding_symbols = label["kind"], label["binding_atoms"], label["binding_symbols"]
    for rec in result.placements:
        if rec.minimum is not None:
            rec.site_kind = result.minima[rec.minimum].site_kind
    return changed


def given_placements(slab: Atoms, adsorbate: Atoms, structures: list[Atoms], *,
                     relax_surface: bool = True) -> list[Atoms]:
    """Copies of caller-supplied starting structures, checked and prepared like generated placements.

    Each structure must hold the slab's atoms (same numbers and order) followed by the
    adsorbate's atoms (tag 2, the adsorbate's element order).  Subsurface atoms (and
    surface atoms unless ``relax_surface``) are fixed; ``info`` carries the binding indices
    and ``placement_origin="given"``.
    """
    from ase.constraints import FixAtoms

    n = len(slab)
    expected = np.concatenate([slab.numbers, adsorbate.numbers])
    out = []
    for k, atoms in enumerate(structures):
        if not isinstance(atoms, Atoms) or len(atoms) != len(expected) or not np.array_equal(atoms.numbers, expected):
            raise ValueError(f"placement {k}: expected the slab's {n} atoms followed by the adsorbate's "
                             f"{len(adsorbate)} ({adsorbate.get_chemical_formula()}), in order")
        tags = np.concatenate([slab.get_tags(), np.full(len(adsorbate), 2)])
        system = Atoms(atoms.numbers, positions=atoms.positions, cell=slab.cell, pbc=slab.pbc, tags=tags)
        fixed = np.flatnonzero((tags == 0) | ((tags == 1) & (not relax_surface)))
        if len(fixed):
            system.set_constraint(FixAtoms(indices=fixed))
        system.info.update(
            binding_indices=[n + int(i) for i in adsorbate.info["binding_indices"]],
            adsorbate_indices=list(range(n, len(system))), placement_index=k,
            placement_origin="given", placement_site=str(atoms.info.get("kind", "given")),
        )
        out.append(system)
    return out


def reference_search(
    slab: Atoms,
    adsorbate: Atoms | str,
    calculator: CalculatorSpec = "chgnet",
    config: SearchConfig | None = None,
    *,
    execution: ExecutionConfig | None = None,
    work_dir: str | Path | None = None,
    budget: int | None = None,
    progress: bool = False,
    system_id: str | None = None,
    placements: list[Atoms] | None = None,
    **overrides: Any,
) -> ReferenceResult:
    """Find the distinct adsorption minima of an adsorbate on a slab and their Boltzmann weights.

    Parameters
    ----------
    slab : ase.Atoms
        Bare slab with OC20 tags (0 subsurface, 1 surface); not modified.
    adsorbate : ase.Atoms or str
        Molecule with ``info["binding_indices"]``, or a name for
        :func:`~digmat.adsorption.get_adsorbate`.
    calculator : str, Calculator or callable, default "chgnet"
        Name for :func:`~digmat.calculators.get_calculator` (``workers > 1``
        needs a name or a picklable factory).
    config : SearchConfig, optional
        What is searched: temperatures (K), placements, convergence (eV/Å), anomaly test,
        merging, vibrations (default :class:`SearchConfig()`).
    execution : ExecutionConfig, optional
        How the relaxations are spread: workers, threads, device, Dask scheduler.
    work_dir : str or Path, optional
        Folder caching every relaxation and Hessian; rerunning with the same
        folder resumes (strongly recommended for expensive calculators).
    budget : int, optional
        Largest number of new (uncached) relaxations to run; when more are
        pending the result has ``complete=False`` and no minima.
    progress : bool, default False
        Show a tqdm progress bar over the relaxations.
    system_id : str, optional
        Identifier stored in the result (default ``"<adsorbate>/<formula>"``).
    placements : list of ase.Atoms, optional
        Starting structures to relax instead of the site-finder and random
        placements — e.g. samples of a generative model: ``slab`` plus the
        adsorbate's atoms (tag 2) in the adsorbate's order, with the slab's
        atoms in the slab's order.  Not modified.  ``num_random``,
        ``heuristic`` and ``seed`` are then unused.
    **overrides
        Any field of :class:`SearchConfig` or :class:`ExecutionConfig` by name
        (``fmax=0.1, workers=4``), replacing the one in ``config``/``execution``.

    Returns
    -------
    ReferenceResult
    """
    from digmat.adsorption.adsorbates import get_adsorbate
    from digmat.adsorption.slabs import validate_slab

    config, execution = split_settings(config, execution, overrides)
    validate_slab(slab)
    if isinstance(adsorbate, str):
        adsorbate = get_adsorbate(adsorbate)
    if budget is not None and budget < 0:
        raise ValueError(f"budget must be >= 0, got {budget}")
    c = config
    check_calculator(calculator)
    calc_name = calculator_name(calculator)
    t0 = time.perf_counter()
    if placements is None:
        placements = make_placements(slab, adsorbate, num_random=c.num_random, heuristic=c.heuristic,
                                     seed=c.seed, relax_surface=c.relax_surface)
        origin = "placements"
    else:
        placements = given_placements(slab, adsorbate, placements, relax_surface=c.relax_surface)
        origin = "given"
    if not placements:
        raise ValueError("no placements: set heuristic=True or num_random > 0")
    settings = {"calculator": calc_name, "fmax": c.fmax, "max_steps": c.max_steps}
    cache = Path(work_dir) if work_dir is not None else None
    tasks = [(f"{origin}/p{k:04d}", fingerprint(p, **settings), "relax", (p, c.fmax, c.max_steps))
             for k, p in enumerate(placements)]
    with TaskRunner(calculator, cache=cache, workers=execution.workers, device=execution.device, threads=execution.threads,
                    scheduler=execution.scheduler) as runner:
        done, started = _relax_all(runner, tasks, budget, progress)
        complete = len(done) == len(tasks)
        records, candidates = _collect(tasks, placements, done, slab, c.surface_mult)
        minima: list[ReferenceMinimum] = []
        hessian_cost = (0, 0)  # (calls the Hessians cost, calls made in this run)
        if complete:
            minima = _merge(candidates, records, c.energy_tolerance)
            images = symmetry_images(slab)
            for m in minima:
                m.multiplicity = site_multiplicity(m.atoms, slab, images=images)[0]
            if c.vibrations and minima:
                hessian_cost = _add_vibrations(minima, runner, calc_name, c.vib_surface, c.hessian_delta)
    result = ReferenceResult(
        slab=slab.copy(), adsorbate=adsorbate.copy(), calculator=calc_name,
        temperatures=c.temperatures, minima=minima, placements=records, complete=complete,
        system_id=system_id or f"{adsorbate.info.get('name', adsorbate.get_chemical_formula())}/"
                               f"{slab.get_chemical_formula()}",
        settings={**c.settings(), "vib_floor": VIB_FLOOR},
    )
    relax_calls = sum(r.calls for r in records)
    fresh_calls = sum(r.calls for r in records if not r.cached) + hessian_cost[1]
    result.cost = {
        "calls": relax_calls + hessian_cost[0], "new_calls": fresh_calls, "relax_calls": relax_calls,
        "hessian_calls": hessian_cost[0], "new_relaxations": started,
        "cached_relaxations": sum(r.cached for r in records),
        "relax_seconds": round(sum(r.seconds for r in records), 3),
        "wall_seconds": round(time.perf_counter() - t0, 3), "workers": execution.workers,
    }
    if complete and minima:  # every relaxation may have been discarded
        result.refresh_probabilities()
    return result


def _relax_all(runner: TaskRunner, tasks: list, budget: int | None, progress: bool) -> tuple[dict, int]:
    """Relax the placements (cached ones are read back and spend no budget)."""
    from tqdm import tqdm

    done: dict[str, dict] = {}
    fresh = []
    for task in tasks:
        hit = load_cached(runner.cache, task[0], task[1])
        if hit is not None:
            done[task[0]] = {**hit, "cached": True}
        else:
            fresh.append(task)
    if budget is not None:
        fresh = fresh[:budget]
    started = 0
    with tqdm(total=len(tasks), initial=len(done), desc="relaxations", unit="placement",
              disable=not progress) as bar:
        for key, result in runner.run(fresh):
            done[key] = result
            started += 1
            bar.update()
    return done, started


def _collect(tasks, placements, done, slab, surface_mult) -> tuple[list[PlacementRecord], list]:
    """Per-placement records, and the good relaxations as (energy, record index, Atoms, site description)."""
    symmetry = SlabSymmetry(slab)
    assigner = SiteAssigner(slab)
    records: list[PlacementRecord] = []
    candidates = []
    for (key, _, _, _), initial in zip(tasks, placements, strict=True):
        res = done.get(key)
        rec = PlacementRecord.from_placement(initial)
        if res is None:
            rec.flags = ["pending"]
        elif "error" in res:
            rec.flags, rec.error = ["failed"], res["error"]
            rec.calls, rec.seconds, rec.cached = res["calls"], res["seconds"], bool(res.get("cached"))
        else:
            relaxed = initial.copy()
            relaxed.positions = np.asarray(res["positions"], float)
            relaxed.info = {}  # placement facts live in the PlacementRecord
            rec.energy, rec.steps, rec.converged = res["energy"], res["steps"], res["converged"]
            rec.calls, rec.seconds, rec.cached = res["calls"], res["seconds"], bool(res.get("cached"))
            rec.flags = detect_anomalies(initial, relaxed, surface_mult=surface_mult).names()
            if rec.flags:  # kept so that the flag can be re-checked from the result alone
                rec.positions = np.round(relaxed.positions, 4).tolist()
            if not res["converged"]:
                rec.flags.append("unconverged")
            if not rec.flags:
                desc = _describe(relaxed, slab, symmetry, assigner, list(initial.info["binding_indices"]))
                rec.site_kind = desc["kind"]
                candidates.append((res["energy"], len(records), relaxed, desc))
        records.append(rec)
    return records, candidates


def _merge(candidates, records, energy_tolerance) -> list[ReferenceMinimum]:
    """Distinct minima: same site key and energy within the tolerance → one minimum (lowest kept)."""
    minima: list[ReferenceMinimum] = []
    for energy, r, relaxed, desc in sorted(candidates, key=lambda c: (c[0], c[1])):
        k = next((k for k, m in enumerate(minima)
                  if m.site_key == desc["key"] and abs(m.energy - energy) <= energy_tolerance), None)
        if k is None:
            k = len(minima)
            minima.append(ReferenceMinimum(
                atoms=relaxed, energy=float(energy), site_kind=desc["kind"],
                binding_atoms=desc["binding_atoms"], binding_symbols=desc["binding_symbols"],
                adsorbate_atom=desc["adsorbate_atom"], site_key=desc["key"],
            ))
        minima[k].placements.append(records[r].index)
        records[r].minimum = k
    return minima


def _add_vibrations(minima, runner: TaskRunner, calc_name: str, vib_surface: bool, delta: float) -> tuple[int, int]:
    """Hessians (cached) and vibrational analyses of every minimum; returns (calls, new calls)."""
    tasks = []
    for m in minima:
        tags = m.atoms.get_tags()
        fixed = np.zeros(len(m.atoms), bool)
        for c in m.atoms.constraints:
            fixed[c.get_indices()] = True
        mask = (tags == 2) | ((tags == 1) & ~fixed & vib_surface)
        m.hessian_indices = np.flatnonzero(mask).tolist()
        fp = fingerprint(m.atoms, calculator=calc_name, indices=m.hessian_indices, delta=delta)
        tasks.append((f"hessians/{fp}", fp, "hessian", (m.atoms, m.hessian_indices, delta)))
    calls = new = 0
    by_key = {t[0]: m for t, m in zip(tasks, minima, strict=True)}
    for key, res in runner.run(tasks):
        m = by_key[key]
        m.hessian = np.asarray(res["hessian"], float)
        calls += int(res["calls"])
        new += 0 if res.get("cached") else int(res["calls"])
        vib = vibrational_analysis(m.hessian, m.atoms.get_masses()[m.hessian_indices])
        m.vib_energies = vib.energies
        m.n_imaginary, m.n_soft = vib.n_imaginary, vib.n_soft
        m.flags = [f for f in m.flags if f != "saddle"] + ([] if vib.is_minimum else ["saddle"])
    return calls, new


def recompute_vibrations(
    result: ReferenceResult,
    calculator: CalculatorSpec,
    *,
    delta: float,
    execution: ExecutionConfig | None = None,
    work_dir: str | Path | None = None,
) -> ReferenceResult:
    """A copy of a search whose minima's Hessians are recomputed with another displacement.

    The minima (structures, energies, multiplicities) are kept; each one's Hessian, modes,
    ``"saddle"`` flag and the probabilities are redone with displacement ``delta``.  Comparing
    the copy's populations with the original's measures how far the harmonic reference moves
    under a choice the physics should not care about — its precision (the benchmark's
    ``reference_delta_tv_*``).

    Parameters
    ----------
    result : ReferenceResult
        A complete search with vibrations; not modified.
    calculator : str, Calculator or callable
        The search's calculator (as for :func:`reference_search`); a name must be the search's.
    delta : float
        Displacement, Å, > 0.
    execution : ExecutionConfig, optional
        Workers, threads, device, Dask scheduler for the Hessians.
    work_dir : str or Path, optional
        Folder caching the Hessians.

    Returns
    -------
    ReferenceResult
        With ``settings["hessian_delta"] = delta`` and ``cost["hessian_calls"]`` the calls made.
    """
    result.require_vibrations("recompute_vibrations")
    if not delta > 0:
        raise ValueError(f"delta must be positive (Å), got {delta}")
    calc_name = calculator_name(calculator)
    if isinstance(calculator, str) and calc_name != result.calculator:  # an instance or factory is the caller's word
        raise ValueError(f"{result.system_id} was searched with {result.calculator}, not {calc_name}")
    check_calculator(calculator)  # after the name check: the wrong calculator is the error, installed or not
    execution = execution or ExecutionConfig()
    out = copy.deepcopy(result)
    vib_surface = bool(out.settings.get("vib_surface", False))
    with TaskRunner(calculator, cache=Path(work_dir) if work_dir is not None else None, workers=execution.workers,
                    device=execution.device, threads=execution.threads, scheduler=execution.scheduler) as runner:
        calls, _ = _add_vibrations(out.minima, runner, calc_name, vib_surface, float(delta))
    out.settings = {**out.settings, "hessian_delta": float(delta)}
    out.cost = {"calls": calls, "hessian_calls": calls}
    out.refresh_probabilities()
    return out
