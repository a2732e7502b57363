"""Ramachandran basins of a residue, their populations and free energies.

The (φ, ψ) torus is partitioned into four basins (degrees; every point has exactly one):

==============  ===========================================================
``β/C7eq``      φ < −100, ψ ≥ 120 or ψ < −120;  and φ < 0, 50 ≤ ψ < 120
``PII``         −100 ≤ φ < 0, ψ ≥ 120 or ψ < −120
``αR``          φ < 0, −120 ≤ ψ < 50
``αL/C7ax``     φ ≥ 0
==============  ===========================================================

The C7eq minimum of alanine dipeptide (≈ −83°, 73°) falls in ``β/C7eq``, its PII minimum
(≈ −75°, 145°) in ``PII``, and both left-handed minima (αL ≈ 60°, 40°; C7ax ≈ 70°, −70°)
in ``αL/C7ax``.  Free energies are F_b = −k_B T ln p_b in kcal/mol.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = [
    "BASINS",
    "KB_KCAL",
    "BasinTable",
    "assign_basins",
    "basin_table",
    "free_energies",
]

BASINS = ("β/C7eq", "PII", "αR", "αL/C7ax")
"""Basin names, in the order of :func:`assign_basins`' indices."""

KB_KCAL = 0.0019872043
"""Boltzmann constant in kcal/(mol K)."""


def assign_basins(phi_psi_deg: np.ndarray) -> np.ndarray:
    """Basin index (into :data:`BASINS`) of each (φ, ψ) pair.

    Parameters
    ----------
    phi_psi_deg : ndarray, shape (..., 2)
        (φ, ψ) in degrees, any range (wrapped to [−180, 180)).

    Returns
    -------
    ndarray of int, shape (...)
    """
    a = (np.asarray(phi_psi_deg, dtype=float) + 180.0) % 360.0 - 180.0
    phi, psi = a[..., 0], a[..., 1]
    extended = (psi >= 120.0) | (psi < -120.0)
    alpha_r = (psi >= -120.0) & (psi < 50.0)
    out = np.full(phi.shape, 3, dtype=int)  # φ ≥ 0: αL/C7ax
    left = phi < 0.0
    out[left & alpha_r] = 2
    out[left & extended & (phi >= -100.0)] = 1
    out[left & extended & (phi < -100.0)] = 0
    out[left & ~extended & ~alpha_r] = 0  # 50 ≤ ψ < 120: C7eq
    return out


def free_energies(populations: np.ndarray, temperature: float) -> np.ndarray:
    """F_b = −k_B T ln p_b in kcal/mol (``inf`` for an empty basin)."""
    p = np.asarray(populations, dtype=float)
    with np.errstate(divide="ignore"):
        return -KB_KCAL * temperature * np.log(p)


@dataclass(frozen=True)
class BasinTable:
    """Basin populations of one residue with 95 % intervals.

    Attributes
    ----------
    names : tuple of str
        :data:`BASINS`.
    populations, lower, upper : ndarray, shape (4,)
        Populations and their 95 % Wilson intervals at the effective sample size.
    free_energy : ndarray, shape (4,)
        −k_B T ln p in kcal/mol.
    effective_samples : float
        Kish effective sample size of the weights (the number of samples when unweighted).
    temperature : float
        K.
    """

    names: tuple[str, ...]
    populations: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    free_energy: np.ndarray
    effective_samples: float
    temperature: float

    def relative_free_energy(self, reference: int = 0) -> np.ndarray:
        """ΔF_b = F_b − F_reference in kcal/mol."""
        return self.free_energy - self.free_energy[reference]

    def as_dict(self) -> dict:
        """JSON-ready rows, one per basin."""
        return {
            name: {
                "population": float(p), "ci95": [float(lo), float(hi)],
                "free_energy_kcal_mol": None if not np.isfinite(f) else float(f),
            }
            for name, p, lo, hi, f in zip(self.names, self.populations, self.lower, self.upper, self.free_energy)
        }


def basin_table(phi_psi_deg: np.ndarray, temperature: float, weights: np.ndarray | None = None) -> BasinTable:
    """Basin populations of one residue's (φ, ψ) samples.

    Parameters
    ----------
    phi_psi_deg : ndarray, shape (n, 2)
        Samples of (φ, ψ) in degrees.
    temperature : float
        K, for the free energies.
    weights : ndarray, shape (n,), optional
        Non-negative importance weights (need not be normalised).

    Returns
    -------
    BasinTable

    Notes
    -----
    The intervals treat the samples as independent at the Kish effective sample size
    (Σw)²/Σw²; for correlated samples (MD frames) they are too narrow.
    """
    labels = assign_basins(phi_psi_deg)
    w = np.ones(len(labels)) if weights is None else np.asarray(weights, dtype=float)
    if w.shape != labels.shape or np.any(w < 0) or not np.isfinite(w).all() or w.sum() <= 0:
        raise ValueError("weights must be finite, non-negative, not all zero, one per sample")
    p = np.bincount(labels, weights=w, minlength=len(BASINS)) / w.sum()
    n_eff = w.sum() ** 2 / np.sum(w**2)
    z = 1.959964
    centre = (p + z**2 / (2 * n_eff)) / (1 + z**2 / n_eff)
    half = z * np.sqrt(p * (1 - p) / n_eff + z**2 / (4 * n_eff**2)) / (1 + z**2 / n_eff)
    return BasinTable(BASINS, p, np.clip(centre - half, 0, 1), np.clip(centre + half, 0, 1),
                      free_energies(p, temperature), float(n_eff), float(temperature))
