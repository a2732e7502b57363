"""Equilibrium samples of ``p(R) ∝ exp(−E(R)/k_B T)`` from reference minima, and OC20 LMDB datasets.

The stated approximation (``method="harmonic"``): ``p(R)`` is a mixture of
the basins found by :func:`~digmat.adsorption.reference_search`, basin ``i``
with its Boltzmann probability ``p_i(T) ∝ g_i exp(−(E_i + F_vib,i(T))/k_B T)``
(:meth:`~digmat.adsorption.ReferenceResult.probabilities`), and within a
basin the harmonic Gaussian ``N(x_i, k_B T H_i⁻¹)`` over the atoms of its
Hessian (the adsorbate, optionally the free surface atoms).  Modes softer
than the vibrational floor (12 meV) or imaginary are stiffened to the floor,
exactly as in ``F_vib``, and no mode's Cartesian standard deviation exceeds
``max_std`` (0.5 Å; the harmonic picture is meaningless beyond).  Each
sample is then moved by a uniformly drawn symmetry operation of the slab
(rotations, mirrors and the translations of the tiled cell) — so the
samples cover all ``g_i`` equivalent copies of the basin in the cell — and
wrapped into the cell.

Energies and forces are evaluated with a calculator when one is given
(``info["energy_source"]`` is its name); otherwise they are the harmonic
model's, ``E_i + ½ δᵀ H_i δ`` and ``−H_i δ`` (``energy_source="harmonic"``).

Units: Å, eV, K.
"""

from __future__ import annotations

import os
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from ase import Atoms, units
from ase.calculators.singlepoint import SinglePointCalculator

from digmat.adsorption.result import ReferenceResult
from digmat.adsorption.thermo import HBAR_OMEGA, VIB_FLOOR, symmetry_images

__all__ = ["BasinGaussian", "basin_gaussian", "sample_equilibrium", "system_seed", "write_equilibrium_dataset"]


def system_seed(seed: int, system_id: str, temperature: float) -> np.random.SeedSequence:
    """Seed of one system at one temperature, independent of the order systems are processed in."""
    return np.random.SeedSequence([int(seed), zlib.crc32(system_id.encode()), round(temperature * 1000)])


def _allocate(p: np.ndarray, num: int, min_per_basin: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Samples per basin and the weight of each basin's samples."""
    usable = p > 0
    base = np.where(usable, min_per_basin, 0)
    rest = num - int(base.sum())
    if rest < 0:
        raise ValueError(f"num_samples={num} is less than min_per_basin × basins = {int(base.sum())}")
    counts = base + rng.multinomial(rest, p)
    with np.errstate(divide="ignore", invalid="ignore"):
        weights = np.where(counts > 0, p * num / np.maximum(counts, 1), 0.0)
    if min_per_basin == 0:
        weights = np.where(counts > 0, 1.0, 0.0)
    return counts, weights


@dataclass(frozen=True)
class BasinGaussian:
    """The harmonic Gaussian of one basin at one temperature (:func:`basin_gaussian`).

    Attributes
    ----------
    displacements : numpy.ndarray
        ``B``, shape ``(3n, 3n)``, Å: a draw is ``δ = B z`` with ``z ~ N(0, I)`` over the
        ``n`` atoms of the minimum's Hessian.
    hessian : numpy.ndarray
        The minimum's (symmetrised) Hessian, eV/Å², shape ``(3n, 3n)``.
    log_shrink : float
        ``Σ_k ln(σ_k / σ_k^h) ≤ 0``: log of the volume of the capped Gaussian relative to the
        uncapped one ``N(0, k_B T H̃⁻¹)`` of the floored Hessian ``H̃`` — the harmonic basin that
        ``F_vib`` describes (0 when no mode's spread was capped).
    """

    displacements: np.ndarray
    hessian: np.ndarray
    log_shrink: float


def basin_gaussian(minimum, temperature: float, max_std: float = 0.5) -> BasinGaussian:
    """The Gaussian a basin's harmonic draws come from, at ``temperature`` K.

    Mass-weighted normal modes of the minimum's Hessian; modes softer than the vibrational floor
    (or imaginary) stiffened to it, as in ``F_vib``; each mode's Cartesian standard deviation
    capped at ``max_std`` Å.
    """
    if minimum.hessian is None:
        raise ValueError(
            "harmonic sampling needs each minimum's Hessian; run reference_search with vibrations=True"
        )
    idx = np.asarray(minimum.hessian_indices, int)
    masses = np.repeat(minimum.atoms.get_masses()[idx], 3)
    inv_sqrt = 1.0 / np.sqrt(masses)
    h = 0.5 * (minimum.hessian + minimum.hessian.T)
    mu, u = np.linalg.eigh(h * np.outer(inv_sqrt, inv_sqrt))  # eV / (Å² amu)
    mu = np.maximum(mu, (VIB_FLOOR / HBAR_OMEGA) ** 2)
    cart = inv_sqrt[:, None] * u  # columns: Cartesian shape of each mode per unit mass-weighted amplitude
    harmonic = np.sqrt(units.kB * temperature / mu)
    sigma = np.minimum(harmonic, max_std / np.linalg.norm(cart, axis=0))
    return BasinGaussian(cart * sigma[None, :], h, float(np.log(sigma / harmonic).sum()))


def sample_equilibrium(
    result: ReferenceResult,
    temperature: float,
    num_samples: int,
    *,
    seed: int | np.random.SeedSequence = 0,
    method: str = "harmonic",
    min_per_basin: int = 0,
    symmetrize: bool = True,
    calculator=None,
    max_std: float = 0.5,
    batch_size: int = 16,
) -> list[Atoms]:
    """Draw structures from the harmonic-basin approximation of ``p(R)`` at ``temperature``.

    Parameters
    ----------
    result : ReferenceResult
        A complete reference search with vibrations.
    temperature : float
        K.
    num_samples : int
        Number of structures.
    seed : int or numpy.random.SeedSequence, default 0
    method : {"harmonic"}
        Per-basin sampler (harmonic Gaussians from the Hessian).
    min_per_basin : int, default 0
        0: basins drawn with probabilities ``p_i(T)``, every weight 1.
        ``k > 0``: at least ``k`` samples from every basin with ``p_i > 0``,
        the rest drawn with ``p_i``; weights ``p_i N / n_i`` make weighted
        basin frequencies exactly ``p_i``.
    symmetrize : bool, default True
        Move each sample by a random symmetry operation of the slab.
    calculator : str or Calculator, optional
        Evaluate energies and forces with it; harmonic model values otherwise.
    max_std : float, default 0.5
        Cap on every mode's Cartesian standard deviation, Å.
    batch_size : int, default 16
        Structures per call of a batched calculator.

    Returns
    -------
    list of ase.Atoms
        Samples with tags and FixAtoms of the minima, energies and forces in a
        SinglePointCalculator, and ``info`` keys ``sid`` (system id), ``fid``
        (sample index), ``temperature`` (K), ``weight``, ``basin`` (minimum
        index), ``site_kind``, ``probability`` (``p_basin(T)``),
        ``multiplicity``, ``energy_source``, ``method`` and ``binding_index``
        (index of the adsorbate's binding atom in the structure).
    """
    if method != "harmonic":
        raise ValueError(f"unknown method {method!r}; available: 'harmonic'")
    if not isinstance(result, ReferenceResult):
        raise ValueError(f"result must be a ReferenceResult, got {type(result).__name__}")
    if not result.complete or not result.minima:
        raise ValueError(f"{result.system_id}: the reference search is incomplete or found no minima")
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0 K, got {temperature}")
    if num_samples < 0 or min_per_basin < 0 or not max_std > 0:
        raise ValueError("num_samples and min_per_basin must be >= 0 and max_std > 0")
    rng = np.random.default_rng(seed)
    p = result.probabilities(temperature)
    counts, weights = _allocate(p, num_samples, min_per_basin, rng)
    images = symmetry_images(result.slab) if symmetrize else []
    anchor = int(result.adsorbate.info.get("binding_indices", [0])[0])
    out: list[Atoms] = []
    for i in np.flatnonzero(counts):
        m = result.minima[i]
        binding_index = int(np.flatnonzero(m.atoms.get_tags() == 2)[anchor])
        gauss = basin_gaussian(m, temperature, max_std)
        b, h = gauss.displacements, gauss.hessian
        idx = np.asarray(m.hessian_indices, int)
        for _ in range(counts[i]):
            delta = b @ rng.standard_normal(b.shape[1])
            atoms = m.atoms.copy()
            atoms.positions[idx] += delta.reshape(-1, 3)
            forces = np.zeros((len(atoms), 3))
            forces[idx] = -(h @ delta).reshape(-1, 3)
            if images:
                op = images[int(rng.integers(len(images)))]
                atoms = op.apply(atoms, result.slab)
                forces = op.map_vectors(forces)
            atoms.wrap()
            atoms.calc = SinglePointCalculator(atoms, energy=m.energy + 0.5 * float(delta @ h @ delta),
                                               forces=forces)
            atoms.info.update(
                sid=result.system_id, fid=len(out), temperature=float(temperature),
                weight=float(weights[i]), basin=int(i), site_kind=m.site_kind,
                probability=float(p[i]), multiplicity=int(m.multiplicity),
                energy_source="harmonic", method=method, binding_index=binding_index,
            )
            out.append(atoms)
    order = rng.permutation(len(out))  # interleave basins
    out = [out[k] for k in order]
    for k, atoms in enumerate(out):
        atoms.info["fid"] = k
    if calculator is not None and out:
        out = _evaluate(out, calculator, batch_size)
    return out


def _evaluate(samples: list[Atoms], calculator, batch_size: int) -> list[Atoms]:
    from digmat.adsorption.relax import calculator_name, make_calculator
    from digmat.calculators import calculate_batch

    calc = make_calculator(calculator)
    name = calculator_name(calculator)
    done = calculate_batch(samples, calc, batch_size=batch_size)
    for a, src in zip(done, samples, strict=True):
        a.info = dict(src.info, energy_source=name)
    return done


def write_equilibrium_dataset(
    results: Sequence[ReferenceResult],
    temperatures: Sequence[float],
    path: str | os.PathLike,
    samples_per_system: int,
    *,
    seed: int = 0,
    min_per_basin: int = 0,
    symmetrize: bool = True,
    calculator=None,
    overwrite: bool = False,
    float_dtype: str = "float64",
) -> int:
    """Write equilibrium samples of many systems at several temperatures as an OC20-format LMDB.

    Each (system, temperature) draws ``samples_per_system`` structures with
    :func:`sample_equilibrium`, seeded by :func:`system_seed` — the same
    inputs always give the same file, whatever the order of ``results``.
    Records hold ``pos``, ``atomic_numbers``, ``cell`` (1, 3, 3), ``pbc``,
    ``tags``, ``fixed``, ``natoms``, ``sid``, ``fid``, ``energy``,
    ``forces``, ``temperature``, ``weight``, ``basin``, ``site_kind``,
    ``probability``, ``multiplicity``, ``energy_source``, ``binding_index`` (read them back with
    :class:`digmat.data.LmdbDataset`).  The file appears only when complete.

    Parameters
    ----------
    results : sequence of ReferenceResult
    temperatures : sequence of float
        K.
    path : str or os.PathLike
        Output ``*.lmdb`` file.
    samples_per_system : int
        Samples per system and temperature.
    seed : int, default 0
    min_per_basin, symmetrize, calculator
        As for :func:`sample_equilibrium`.
    overwrite : bool, default False
    float_dtype : {"float64", "float32"}

    Returns
    -------
    int
        Records written.
    """
    from digmat.data.lmdb import write_lmdb

    temps = [float(t) for t in temperatures]
    if not temps:
        raise ValueError("no temperatures given")
    results = list(results)

    def records() -> Iterator[Atoms]:
        for result in results:
            for t in temps:
                yield from sample_equilibrium(
                    result, t, samples_per_system, seed=system_seed(seed, result.system_id, t),
                    min_per_basin=min_per_basin, symmetrize=symmetrize, calculator=calculator,
                )

    return write_lmdb(Path(path), records(), overwrite=overwrite, float_dtype=float_dtype)
