"""Binding modes: poses clustered by symmetry-aware RMSD, with populations and their uncertainty.

Poses are clustered greedily in order of energy (lowest first): a pose joins the first mode
whose representative — the mode's lowest-energy pose — lies within ``cutoff`` Å heavy-atom
RMSD (symmetry-aware, no superposition: a pose RMSD, as docking reports), or starts a new mode.
Populations are sample weights summed per mode.  For samples from independent chains the 95 %
interval is a t-interval over the chains' own populations (the chains are the independent
replicates, so correlation within a chain is accounted for), and the convergence check compares
two independent halves of the chains.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from digmat.ligand.pose import PoseSpace

__all__ = ["BindingModes", "cluster_modes"]


@dataclass(frozen=True, eq=False)
class BindingModes:
    """Modes of a set of poses, most populated first.

    Attributes
    ----------
    representatives : numpy.ndarray
        (K, N, 3) Å: the lowest-energy pose of each mode.
    populations : numpy.ndarray
        (K,): weight fraction of each mode (sums to 1).
    interval : numpy.ndarray
        (K, 2): 95 % interval of each population (chain replicates), NaN without chains.
    half_populations : numpy.ndarray
        (2, K): populations from the even- and the odd-numbered chains.
    energy_min, energy_mean : numpy.ndarray
        (K,) kcal/mol: lowest and weighted-mean energy of each mode's poses.
    labels : numpy.ndarray
        (S,): the mode of each pose (in the order of ``representatives``).
    cutoff : float
        Å, the clustering radius.
    """

    representatives: np.ndarray
    populations: np.ndarray
    interval: np.ndarray
    half_populations: np.ndarray
    energy_min: np.ndarray
    energy_mean: np.ndarray
    labels: np.ndarray
    cutoff: float

    @property
    def max_half_difference(self) -> float:
        """Largest difference of a mode's population between the two halves."""
        return float(np.abs(self.half_populations[0] - self.half_populations[1]).max())

    def rmsd_to(self, space: PoseSpace, pose) -> np.ndarray:
        """Symmetry-aware RMSD (Å) of each representative to ``pose`` (N, 3), e.g. the crystal pose."""
        return space.rmsd(self.representatives, pose)[:, 0]

    def table(self, space: PoseSpace | None = None, reference=None) -> list[dict]:
        """One row per mode: population, interval, energies (and RMSD to ``reference`` if given)."""
        rmsd = self.rmsd_to(space, reference) if space is not None and reference is not None else None
        rows = []
        for k in range(len(self.populations)):
            row = {"mode": k + 1, "population": float(self.populations[k]),
                   "ci95": [float(v) for v in self.interval[k]],
                   "energy_min": float(self.energy_min[k]), "energy_mean": float(self.energy_mean[k])}
            if rmsd is not None:
                row["rmsd_to_reference"] = float(rmsd[k])
            rows.append(row)
        return rows


def cluster_modes(space: PoseSpace, positions, energies, *, chains=None, weights=None,
                  cutoff: float = 2.0) -> BindingModes:
    """Cluster poses into binding modes.

    Parameters
    ----------
    space : PoseSpace
        The ligand (for symmetry-aware RMSD).
    positions : array_like
        (S, N, 3) Å poses.
    energies : array_like
        (S,) kcal/mol: orders the leaders (lowest first).
    chains : array_like of int, optional
        (S,) the independent chain each pose came from: gives the 95 % intervals and the
        halves (even/odd chains).  Without it the halves are the first and second half.
    weights : array_like, optional
        (S,) importance weights (default equal).
    cutoff : float
        Å: a pose within this RMSD of a mode's representative joins it.
    """
    x = np.asarray(positions, float).reshape(-1, space.num_atoms, 3)
    e = np.asarray(energies, float).ravel()
    s = len(x)
    if len(e) != s or s == 0:
        raise ValueError("need one energy per pose and at least one pose")
    w = np.ones(s) if weights is None else np.asarray(weights, float).ravel()
    order = np.argsort(e, kind="stable")
    leaders: list[int] = []
    labels = np.full(s, -1)
    for i in order:
        if leaders:
            d = space.rmsd(x[i], x[leaders])[0]
            near = np.flatnonzero(d <= cutoff)
            if len(near):
                labels[i] = near[0]
                continue
        labels[i] = len(leaders)
        leaders.append(i)
    k = len(leaders)
    pop = np.bincount(labels, weights=w, minlength=k) / w.sum()
    rank = np.argsort(-pop, kind="stable")
    relabel = np.empty(k, int)
    relabel[rank] = np.arange(k)
    labels = relabel[labels]
    pop = pop[rank]
    leaders = [leaders[r] for r in rank]
    if chains is None:
        half = (np.arange(s) >= s // 2).astype(int)
        interval = np.full((k, 2), np.nan)
    else:
        chains = np.asarray(chains).ravel()
        half = chains % 2
        ids = np.unique(chains)
        per_chain = np.array([np.bincount(labels[chains == c], weights=w[chains == c], minlength=k) / w[chains == c].sum()
                              for c in ids])
        interval = _t_interval(per_chain)
    halves = np.array([np.bincount(labels[half == h], weights=w[half == h], minlength=k) / max(w[half == h].sum(), 1e-300)
                       for h in (0, 1)])
    e_mean = np.bincount(labels, weights=w * e, minlength=k) / np.bincount(labels, weights=w, minlength=k)
    return BindingModes(representatives=x[leaders], populations=pop, interval=interval, half_populations=halves,
                        energy_min=e[leaders], energy_mean=e_mean, labels=labels, cutoff=float(cutoff))


def _t_interval(per_chain: np.ndarray) -> np.ndarray:
    """95 % t-interval of the mean over chains (rows), clipped to [0, 1]."""
    from scipy import stats

    n = len(per_chain)
    mean = per_chain.mean(0)
    if n < 2:
        return np.column_stack([mean, mean])
    half = stats.t.ppf(0.975, n - 1) * per_chain.std(0, ddof=1) / np.sqrt(n)
    return np.clip(np.column_stack([mean - half, mean + half]), 0.0, 1.0)
