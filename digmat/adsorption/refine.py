"""Calculator-verified site populations for samples of a generative model.

Two ways to turn a model's samples into populations that agree with a calculator:

* :func:`refine_sites` (``digmat adsorb --refine CALC``) — relax a few representatives of
  every sampled site with the calculator (the reference search's relaxation, anomaly tests
  and merging of equivalent minima, :func:`~digmat.adsorption.reference_search` with the
  samples as placements), compute each minimum's harmonic free energy and multiplicity, and
  report the Boltzmann populations ``p_i ∝ g_i exp(−(E_i + F_vib,i(T)) / k_B T)`` — the
  reference search's own thermochemistry — beside the model's, at a fraction of the
  search's calculator calls: the model proposes the sites, physics weighs them.
* :func:`importance_weights` (``--reweight CALC``) — self-normalised importance weights
  ``w_i ∝ exp(−E(x_i)/k_B T − log p(x_i))`` of the samples themselves from the model's
  log-density and the calculator's energy, with the effective sample size
  ``(Σ w)² / Σ w²``: exact in the limit of many samples whenever the model covers the
  Boltzmann distribution of the same state variables, and as good as its ESS says.

Units: eV, K, nats.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms, units

from digmat.adsorption.reference import ReferenceResult, reference_search
from digmat.adsorption.search_config import (
    ExecutionConfig,
    SearchConfig,
    split_settings,
)
from digmat.adsorption.site_assignment import SiteAssigner

__all__ = [
    "RefinedMinimum",
    "Refinement",
    "importance_weights",
    "pick_representatives",
    "refine_sites",
    "weighted_site_probabilities",
]


@dataclass
class RefinedMinimum:
    """One calculator minimum reached from the representatives.

    Attributes
    ----------
    site : int or None
        Label of the model's site it lies on (None: a site no sample was assigned to).
    kind : str
        Site kind of the relaxed structure.
    energy : float
        Relaxed energy, eV.
    free_energy : float
        ``E + F_vib(T)``, eV.
    multiplicity : int
        Symmetry-equivalent copies in the cell.
    probability : float
        Boltzmann population at the temperature.
    saddle : bool
        The Hessian has imaginary modes (weighted 0 unless every minimum is one).
    from_sites : list of int
        Model site labels of the representatives that relaxed into it.
    """

    site: int | None
    kind: str
    energy: float
    free_energy: float
    multiplicity: int
    probability: float
    saddle: bool
    from_sites: list[int]


@dataclass
class Refinement:
    """Outcome of :func:`refine_sites`.

    Attributes
    ----------
    temperature : float
        K.
    calculator : str
    minima : list of RefinedMinimum
        Lowest energy first.
    site_probabilities : dict of int to float
        Refined population of each model site label (0 for a sampled site whose
        representatives all relaxed elsewhere); minima on unsampled sites are
        listed in ``minima`` with ``site=None``.
    calls : int
        Calculator calls spent (relaxations + Hessians).
    representatives : list of int
        Indices of the relaxed samples.
    discarded : int
        Relaxations discarded as anomalies or unconverged.
    reference : ReferenceResult
        The underlying search result (minima structures, Hessians).
    """

    temperature: float
    calculator: str
    minima: list[RefinedMinimum]
    site_probabilities: dict[int, float]
    calls: int
    representatives: list[int]
    discarded: int
    reference: ReferenceResult = field(repr=False)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able summary (no structures)."""
        return {
            "calculator": self.calculator, "temperature_K": self.temperature, "calls": self.calls,
            "representatives": self.representatives, "discarded": self.discarded,
            "site_probabilities": {str(k): round(v, 6) for k, v in self.site_probabilities.items()},
            "minima": [asdict(m) for m in self.minima],
        }


def pick_representatives(labels: Sequence[int], per_site: int, *,
                         log_density: Sequence[float] | None = None,
                         distance: Sequence[float] | None = None) -> list[int]:
    """Up to ``per_site`` samples of every site: the most probable under the model when
    log-densities are given, else the nearest to their site point when distances are given,
    else the first ones, spread over the site's samples.

    A thermal sample far from its site point can relax out of a shallow basin (a bridge
    minimum 0.18 eV above the hollows of Ir(111)+O, say); the central ones stay in it.

    Parameters
    ----------
    labels : sequence of int
        Site label of every sample, shape ``(n,)``.
    per_site : int
        Representatives per site, >= 1.
    log_density : sequence of float, optional
        Log-density of every sample, nats.
    distance : sequence of float, optional
        Distance of every sample's binding atom from its site point, Å.

    Returns
    -------
    list of int
        Sample indices, by site label then rank.
    """
    if per_site < 1:
        raise ValueError(f"per_site must be >= 1, got {per_site}")
    labels = np.asarray(labels)
    picked: list[int] = []
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        if log_density is not None and np.all(np.isfinite(np.asarray(log_density)[members])):
            members = members[np.argsort(-np.asarray(log_density)[members], kind="stable")]
            picked.extend(int(i) for i in members[:per_site])
        elif distance is not None and np.all(np.isfinite(np.asarray(distance)[members])):
            members = members[np.argsort(np.asarray(distance)[members], kind="stable")]
            picked.extend(int(i) for i in members[:per_site])
        else:
            take = np.linspace(0, len(members) - 1, min(per_site, len(members))).round().astype(int)
            picked.extend(int(members[i]) for i in np.unique(take))
    return picked


def refine_sites(
    slab: Atoms,
    adsorbate: Atoms,
    configurations: Sequence[Atoms],
    labels: Sequence[int],
    calculator,
    *,
    temperature: float,
    binding_index: int,
    per_site: int = 2,
    log_density: Sequence[float] | None = None,
    config: SearchConfig | None = None,
    execution: ExecutionConfig | None = None,
    work_dir: str | Path | None = None,
    progress: bool = False,
    **overrides: Any,
) -> Refinement:
    """Relax representatives of every sampled site and weigh the minima by harmonic free energy.

    Parameters
    ----------
    slab : ase.Atoms
        The bare slab (OC20 tags) the configurations were sampled on.
    adsorbate : ase.Atoms
        The adsorbate (``info["binding_indices"]``).
    configurations : sequence of ase.Atoms
        Samples: the slab's atoms followed by the adsorbate's. Not modified.
    labels : sequence of int
        Site label of every configuration (as from ``summarise_sites``).
    calculator : str, Calculator or callable
        As for :func:`~digmat.adsorption.reference_search`.
    temperature : float
        K, > 0.
    binding_index : int
        Index of the adsorbate's binding atom in the configurations (for site assignment).
    per_site : int, default 2
        Representatives relaxed per sampled site.
    log_density : sequence of float, optional
        Model log-densities of the samples: the most probable samples represent each site
        (without them, the samples nearest their site point do).
    config : SearchConfig, optional
        Relaxation settings (``fmax``, ``max_steps``, ``relax_surface``, vibrations); its
        temperatures are replaced by ``temperature``.
    execution, work_dir, progress
        As for :func:`~digmat.adsorption.reference_search`.
    **overrides
        Any field of :class:`SearchConfig` or :class:`ExecutionConfig` by name (the former
        flat keywords ``fmax``, ``max_steps``, ``relax_surface``, ``workers``, ``scheduler``,
        ``device``), replacing the one in ``config``/``execution``; not ``temperatures``.

    Returns
    -------
    Refinement
    """
    if not temperature > 0:
        raise ValueError(f"temperature must be positive (K), got {temperature}")
    if len(configurations) != len(labels):
        raise ValueError(f"{len(configurations)} configurations but {len(labels)} labels")
    if "temperatures" in overrides:
        raise TypeError("refine_sites() takes one temperature: pass temperature=, not temperatures=")
    config, execution = split_settings(config, execution, overrides, caller="refine_sites")
    assigner = SiteAssigner(slab)
    assigned = [assigner.assign(atoms, binding_index) for atoms in configurations]
    chosen = pick_representatives(labels, per_site, log_density=log_density, distance=[a.distance for a in assigned])
    config = replace(config, temperatures=(float(temperature),))
    result = reference_search(
        slab, adsorbate, calculator, config, execution=execution, work_dir=work_dir,
        progress=progress, placements=[configurations[i] for i in chosen],
        system_id=f"refine {adsorbate.info.get('name', adsorbate.get_chemical_formula())}",
    )
    key_to_label = {}
    for i in chosen:
        key_to_label.setdefault(assigned[i].key, int(labels[i]))
    probabilities = result.probabilities(temperature) if result.minima else np.zeros(0)
    minima = []
    sites = {int(label): 0.0 for label in np.unique(np.asarray(labels)[chosen])}
    for m, p in zip(result.minima, probabilities, strict=True):
        site = key_to_label.get(assigner.assign(m.atoms, binding_index).key)
        minima.append(RefinedMinimum(
            site=site, kind=m.site_kind, energy=float(m.energy),
            free_energy=float(m.energy + m.vib_free_energy(temperature)), multiplicity=int(m.multiplicity),
            probability=float(p), saddle="saddle" in m.flags,
            from_sites=sorted({int(labels[chosen[k]]) for k in m.placements}),
        ))
        if site is not None:
            sites[site] += float(p)
    return Refinement(
        temperature=float(temperature), calculator=result.calculator, minima=minima, site_probabilities=sites,
        calls=int(result.cost["calls"]), representatives=chosen,
        discarded=sum(1 for r in result.placements if r.flags), reference=result,
    )


def importance_weights(log_density: Sequence[float], energies: Sequence[float],
                       temperature: float) -> tuple[np.ndarray, float]:
    """Self-normalised importance weights of samples for the Boltzmann distribution.

    ``w_i ∝ exp(−E_i / k_B T − log p_i)``, normalised to sum to 1.

    Parameters
    ----------
    log_density : sequence of float
        Model log-density of each sample, nats, shape ``(n,)``.
    energies : sequence of float
        Calculator energy of each sample, eV, shape ``(n,)``.
    temperature : float
        K, > 0.

    Returns
    -------
    weights : numpy.ndarray
        Shape ``(n,)``, non-negative, summing to 1.
    ess : float
        Effective sample size ``1 / Σ w_i²`` (between 1 and n).
    """
    log_p = np.asarray(log_density, float)
    e = np.asarray(energies, float)
    if log_p.shape != e.shape or log_p.ndim != 1 or len(e) == 0:
        raise ValueError(f"log_density and energies must be 1-D of one length, got {log_p.shape} and {e.shape}")
    if not temperature > 0:
        raise ValueError(f"temperature must be positive (K), got {temperature}")
    if not (np.all(np.isfinite(log_p)) and np.all(np.isfinite(e))):
        raise ValueError("log-densities and energies must be finite (compute the samples' log-densities first)")
    log_w = -(e - e.min()) / (units.kB * temperature) - log_p
    log_w -= log_w.max()
    w = np.exp(log_w)
    w /= w.sum()
    return w, float(1.0 / np.sum(w**2))


def weighted_site_probabilities(labels: Sequence[int], weights: Sequence[float], num_sites: int) -> np.ndarray:
    """Total weight of each site label, shape ``(num_sites,)``."""
    return np.bincount(np.asarray(labels, int), weights=np.asarray(weights, float), minlength=num_sites)
