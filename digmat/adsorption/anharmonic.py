"""Anharmonic corrections to the harmonic free energies of adsorption minima, by importance sampling.

A reference search weighs minimum ``i`` by ``G_i = E_i + F_vib,i(T)``, the harmonic free energy
of a finite-difference Hessian. That Hessian depends on the displacement and on where the
relaxation stopped, and at high temperature a soft basin is not a parabola. The classical
configurational integral of the basin does not depend on either:

``Z_i = ∫_{basin i} exp(−(E(x) − E_i) / k_B T) dx``  and  ``ΔF_i = −k_B T ln(Z_i / Z_i^h)``,

with ``Z_i^h`` the same integral of the harmonic energy ``½ δᵀ H̃ δ`` of the floored Hessian
``H̃`` (the one ``F_vib`` uses). :func:`anharmonic_corrections` estimates ``Z_i / Z_i^h`` by
importance sampling from the basin's harmonic Gaussian
(:func:`~digmat.adsorption.equilibrium.basin_gaussian`, displacements ``B``):

``Z_i / Z_i^h = s^{3n} exp(log_shrink) · E_z[exp(−(E(x) − E_i)/k_B T + ½|z|²) · 1(x ∈ basin i)]``,

drawn with ``δ = s B z`` (``s = widen``, a proposal wider than the harmonic basin so that the
weights stay bounded where the basin is softer), where ``log_shrink`` accounts for capped modes.
Later rounds draw from the Gaussian fitted to the weighted draws so far, and every draw is
weighted against the mixture of all proposals (adaptive multiple importance sampling; the
first round is the harmonic proposal above). Basin ``i`` is the region whose adsorbate
binding atom lies nearer to minimum ``i``'s (or one of its symmetry images', modulo in-plane
lattice translations) than to any other true minimum's, with the slab frozen at minimum ``i``'s
relaxed geometry; saddles are not basins. :func:`anharmonic_probabilities` then weighs the
minima by ``g_i exp(−(E_i + F_vib,i + ΔF_i)/k_B T)``: the quantum harmonic free energy plus the
classical anharmonic correction, the usual anharmonic-correction scheme. In the limit of many
draws the classical part no longer depends on the Hessian the draws came from.

Units: Å, eV, K.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from ase import units

from digmat.adsorption.equilibrium import basin_gaussian
from digmat.adsorption.result import ReferenceResult
from digmat.adsorption.site_assignment import SiteAssigner
from digmat.adsorption.thermo import boltzmann_probabilities, inplane_distances, symmetry_images

__all__ = ["BasinCorrection", "anharmonic_corrections", "anharmonic_probabilities", "anharmonic_site_probabilities"]


@dataclass(frozen=True)
class BasinCorrection:
    """The anharmonic correction of one minimum (:func:`anharmonic_corrections`).

    Attributes
    ----------
    minimum : int
        Index into ``result.minima``.
    temperature : float
        K.
    correction : float
        ``ΔF_i``, eV; ``inf`` when no draw stayed in the basin (it is no basin at this
        temperature).
    stderr : float
        Standard error of ``ΔF_i`` (delta method), eV.
    in_basin : float
        Share of the draws that stayed in the basin.
    effective_samples : float
        Kish effective sample size of the in-basin weights.
    calls : int
        Calculator calls (draws).
    site_kinds : dict of str to float, optional
        Share of the basin's Boltzmann distribution on each site kind (the importance-weighted
        in-basin draws labelled by :class:`~digmat.adsorption.SiteAssigner` from the binding
        atom): a basin on a flat valley between two sites is split by where its configurations
        lie, not labelled by where its relaxation stopped. Empty when no draw stayed in the basin.
    converged : bool, optional
        The rounds stopped at the error target with the effective sample size asked for, not at
        ``max_samples``. When False the correction and the split are not an answer: a basin
        much flatter than its Hessian defeats the Gaussian proposal.
    """

    minimum: int
    temperature: float
    correction: float
    stderr: float
    in_basin: float
    effective_samples: float
    calls: int
    site_kinds: dict[str, float] | None = None
    converged: bool | None = None


def _binding_positions(result: ReferenceResult, usable: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """Binding-atom positions of every usable minimum and its symmetry images, and their owners."""
    images = symmetry_images(result.slab) or [None]
    points, owner = [], []
    for i in usable:
        m = result.minima[i]
        for op in images:
            atoms = m.atoms if op is None else op.apply(m.atoms, result.slab)
            points.append(atoms.positions[m.adsorbate_atom])
            owner.append(i)
    return np.array(points), np.array(owner)


def anharmonic_corrections(
    result: ReferenceResult,
    calculator,
    temperature: float,
    *,
    num_samples: int = 64,
    max_samples: int = 512,
    target_stderr: float | None = None,
    min_effective_samples: float = 50.0,
    adapt: bool = True,
    seed: int = 0,
    max_std: float = 0.5,
    widen: float = 1.5,
    batch_size: int = 4,
) -> list[BasinCorrection]:
    """Classical anharmonic correction ``ΔF_i`` of every true minimum's harmonic free energy.

    Parameters
    ----------
    result : ReferenceResult
        A complete search with vibrations; not modified.
    calculator : str or Calculator
        The search's energy (a name for :func:`~digmat.calculators.get_calculator`).
    temperature : float
        K, > 0.
    num_samples : int, default 64
        Draws per round (one calculator call each): a minimum gets rounds until its correction's
        standard error is at most ``target_stderr`` with ``min_effective_samples``, or it has
        ``max_samples`` draws.
    max_samples : int, default 512
        Draws per minimum after which no further round starts.
    target_stderr : float, optional
        eV; default ``0.05 k_BT`` (0.0013 eV at 300 K, 0.0052 eV at 1,200 K: a minimum's
        weight to about 5 %); 0: always ``max_samples``.
    min_effective_samples : float, default 50
        Rounds also go on until the in-basin weights' Kish effective sample size reaches this:
        with heavy-tailed weights (a basin flatter than its proposal) the delta-method error
        of a few dozen draws is itself too small.
    seed : int, default 0
    max_std : float, default 0.5
        Cap on each mode's Cartesian spread of the draws, Å (accounted for exactly).
    widen : float, default 1.5
        The draws' spread is this multiple of the (capped) harmonic one (≥ 1): a basin softer
        than its Hessian says (the usual case at high temperature) then gives bounded weights.
    adapt : bool, default True
        After each round, the next round's proposal is the weighted in-basin draws' Gaussian
        (shrunk toward the harmonic one, widened by ``widen``), and every draw is weighted
        against the mixture of all proposals so far (adaptive multiple importance sampling):
        a basin much flatter or more skewed than its Hessian says (CO wobbling over an ontop
        atom at 1,200 K) then still gets usable weights. False: the harmonic proposal throughout.
    batch_size : int, default 4
        Structures per call of a batched calculator (CHGNet's batched prediction holds about
        0.7 GB per 80-atom slab in memory at once).

    Returns
    -------
    list of BasinCorrection
        One per minimum that is not a saddle, in the result's order.
    """
    from digmat.adsorption.relax import make_calculator
    from digmat.calculators import calculate_batch

    result.require_vibrations("anharmonic_corrections")
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0 K, got {temperature}")
    if num_samples < 2 or max_samples < num_samples:
        raise ValueError(f"need num_samples >= 2 and max_samples >= num_samples, got {num_samples} and {max_samples}")
    if target_stderr is not None and not target_stderr >= 0:
        raise ValueError(f"target_stderr must be >= 0 eV, got {target_stderr}")
    if not widen >= 1:
        raise ValueError(f"widen must be >= 1, got {widen}")
    usable = [i for i, m in enumerate(result.minima) if "saddle" not in m.flags]
    if not usable:
        raise ValueError(f"{result.system_id}: every stationary point is a saddle; no basin to correct")
    calc = make_calculator(calculator)
    assigner = SiteAssigner(result.slab)
    points, owner = _binding_positions(result, usable)
    kt = units.kB * float(temperature)
    if target_stderr is None:
        target_stderr = 0.05 * kt
    rng = np.random.default_rng(seed)
    out = []
    for i in usable:
        m = result.minima[i]
        gauss = basin_gaussian(m, temperature, max_std)
        idx = np.asarray(m.hessian_indices, int)
        dim = gauss.displacements.shape[1]
        proposals = [(np.zeros(dim), widen * np.eye(dim))]  # (mean, Cholesky factor) in harmonic units u
        draws, energies, inside, kinds = np.zeros((0, dim)), np.zeros(0), np.zeros(0, bool), []
        while len(draws) < max_samples:  # rounds of num_samples draws until the error is small enough
            mean, chol = proposals[-1]
            u = mean + rng.standard_normal((num_samples, dim)) @ chol.T
            structures = []
            for row in u:
                atoms = m.atoms.copy()
                atoms.positions[idx] += (gauss.displacements @ row).reshape(-1, 3)
                structures.append(atoms)
            done = calculate_batch(structures, calc, batch_size=batch_size)
            binding = np.array([a.positions[m.adsorbate_atom] for a in structures])
            now = owner[inplane_distances(binding, points, m.atoms.cell.array).argmin(axis=1)] == i
            draws = np.concatenate([draws, u])
            energies = np.concatenate([energies, [a.get_potential_energy() for a in done]])
            inside = np.concatenate([inside, now])
            kinds += [assigner.assign(a, m.adsorbate_atom).kind if ok else None for a, ok in zip(structures, now, strict=True)]
            logw = np.where(inside, -(energies - m.energy) / kt - _log_mixture(draws, proposals), -np.inf)
            log_mean, stderr, ess = _estimate(logw, kt)
            converged = stderr <= target_stderr and ess >= min_effective_samples
            if converged:
                break
            if adapt and ess >= 2:
                proposals.append(_refit(draws, logw, ess, widen))
        if not np.isfinite(log_mean):  # no draw stayed in the basin
            out.append(BasinCorrection(i, float(temperature), float("inf"), float("inf"), 0.0, 0.0, len(draws), {}, False))
            continue
        out.append(BasinCorrection(i, float(temperature), float(-kt * (log_mean + gauss.log_shrink)), stderr,
                                   float(inside.mean()), ess, len(draws), _kind_shares(logw, kinds), bool(converged)))
    return out


def _log_mixture(u: np.ndarray, proposals: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """``ln((2π)^{d/2} q(u))`` of the equal-count mixture of the Gaussian proposals (mean, Cholesky
    factor) that drew ``u`` (shape ``(n, d)``): the deterministic-mixture weights of adaptive
    multiple importance sampling, which keep an early, too narrow proposal's tail draws from
    dominating."""
    terms = []
    for mean, chol in proposals:
        white = np.linalg.solve(chol, (u - mean).T).T
        terms.append(-np.log(np.abs(np.diag(chol))).sum() - 0.5 * (white ** 2).sum(axis=1))
    terms = np.array(terms)
    top = terms.max(axis=0)
    return top + np.log(np.exp(terms - top).mean(axis=0))


def _refit(u: np.ndarray, logw: np.ndarray, ess: float, widen: float) -> tuple[np.ndarray, np.ndarray]:
    """The next proposal: the weighted in-basin draws' mean and covariance, shrunk toward the
    harmonic one (identity) by ``d / (ESS + d)``, widened by ``widen``."""
    w = np.exp(logw - logw.max())
    w /= w.sum()
    mean = w @ u
    centred = u - mean
    cov = (centred * w[:, None]).T @ centred
    dim = u.shape[1]
    cov = (ess * cov + dim * np.eye(dim)) / (ess + dim)
    return mean, widen * np.linalg.cholesky(cov)


def _kind_shares(logw: np.ndarray, kinds: Sequence[str | None]) -> dict[str, float]:
    """Importance-weighted share of each site kind among the in-basin draws (``kinds[j]`` is None outside)."""
    w = np.exp(logw - logw.max())
    shares: dict[str, float] = {}
    for weight, kind in zip(w, kinds, strict=True):
        if kind is not None:
            shares[kind] = shares.get(kind, 0.0) + float(weight)
    total = sum(shares.values())
    return {k: v / total for k, v in sorted(shares.items())}


def _estimate(logw: np.ndarray, kt: float) -> tuple[float, float, float]:
    """``ln mean(exp(logw))``, the standard error of ``−k_BT`` times it (delta method, eV) and the
    Kish effective sample size; ``(-inf, inf, 0)`` when every weight is 0."""
    if not np.isfinite(logw).any():
        return float("-inf"), float("inf"), 0.0
    top = logw.max()
    w = np.exp(logw - top)
    return (float(top + np.log(w.mean())), float(kt * w.std(ddof=1) / (w.mean() * np.sqrt(len(w)))),
            float(w.sum() ** 2 / (w ** 2).sum()))


def anharmonic_probabilities(result: ReferenceResult, corrections: Sequence[BasinCorrection]) -> np.ndarray:
    """Boltzmann probability of each minimum with its anharmonic correction, shape ``(n_minima,)``.

    ``p_i ∝ g_i exp(−(E_i + F_vib,i(T) + ΔF_i)/k_B T)`` over the corrected minima (all at one
    temperature); saddles and basins with no draw inside get 0.
    """
    if not corrections:
        raise ValueError("no corrections given")
    temps = {c.temperature for c in corrections}
    if len(temps) != 1:
        raise ValueError(f"corrections at several temperatures: {sorted(temps)}")
    temperature = temps.pop()
    kept = [c for c in corrections if np.isfinite(c.correction)]
    if not kept:
        raise ValueError(f"{result.system_id}: no basin kept any draw at {temperature:g} K")
    g = [result.minima[c.minimum].energy + result.minima[c.minimum].vib_free_energy(temperature) + c.correction for c in kept]
    p = np.zeros(len(result.minima))
    p[[c.minimum for c in kept]] = boltzmann_probabilities(g, [result.minima[c.minimum].multiplicity for c in kept], temperature)
    return p


def anharmonic_site_probabilities(result: ReferenceResult, corrections: Sequence[BasinCorrection]) -> dict[str, float]:
    """Population of each site kind: ``Σ_i p_i s_i(kind)``, with ``p_i`` from
    :func:`anharmonic_probabilities` and ``s_i`` the basin's own split over site kinds
    (``BasinCorrection.site_kinds``).

    Unlike ``result.site_probabilities(T)``, which gives each minimum's whole weight to the kind
    of the point where its relaxation stopped, this does not depend on where in a flat basin the
    minimum lies. Sorted by kind.
    """
    p = anharmonic_probabilities(result, corrections)
    out: dict[str, float] = {}
    for c in corrections:
        if not np.isfinite(c.correction):
            continue
        if c.site_kinds is None:
            raise ValueError(f"the correction of minimum {c.minimum} carries no site-kind split (made by hand?)")
        for kind, share in c.site_kinds.items():
            out[kind] = out.get(kind, 0.0) + float(p[c.minimum]) * share
    return dict(sorted(out.items()))
