"""Harmonic thermochemistry of adsorption minima and their Boltzmann weights.

* :func:`finite_difference_hessian` — central-difference Hessian of the
  energy with respect to chosen atoms' Cartesian coordinates, eV/Å²;
* :func:`vibrational_analysis` — mass-weighted normal modes → vibrational
  energies ``ħω`` (eV); imaginary modes (saddle points) are counted and
  flagged, modes below a floor are raised to it;
* :func:`harmonic_free_energy` — harmonic Helmholtz free energy
  ``F_vib(T) = Σ_i [ε_i/2 + k_B T ln(1 − exp(−ε_i / k_B T))]`` (zero-point
  plus thermal), the same quantity as ASE's
  :class:`~ase.thermochemistry.HarmonicThermo` ``get_helmholtz_energy``;
* :func:`symmetry_images` / :func:`site_multiplicity` — the copies of an
  adsorbate configuration that the slab's symmetry (with lattice
  translations) makes in the cell, and their number ``g``;
* :func:`boltzmann_probabilities` — ``p_i ∝ g_i exp(−(E_i + F_vib,i)/k_B T)``.

Units: Å, eV, K, amu.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from ase import Atoms, units
from ase.calculators.calculator import Calculator

from digmat.adsorption.sites import SlabSymmetry

__all__ = [
    "VIB_FLOOR",
    "SymmetryImage",
    "Vibrations",
    "boltzmann_probabilities",
    "finite_difference_hessian",
    "harmonic_free_energy",
    "inplane_distances",
    "site_multiplicity",
    "symmetry_images",
    "vibrational_analysis",
]

#: Floor of vibrational energies, eV (soft modes are raised to it).
VIB_FLOOR = 0.012
#: ħ·sqrt(eV / (Å² amu)) in eV: converts mass-weighted Hessian eigenvalues to ħω.
HBAR_OMEGA = units._hbar * 1e10 / np.sqrt(units._e * units._amu)


def finite_difference_hessian(
    atoms: Atoms,
    calculator: Calculator,
    indices: Sequence[int],
    *,
    delta: float = 0.01,
    batch_size: int = 16,
) -> np.ndarray:
    """Central-difference Hessian of the energy for the given atoms.

    ``H[3a+α, 3b+β] = −(F_{b,β}(x + δ e_{a,α}) − F_{b,β}(x − δ e_{a,α})) / 2δ``,
    symmetrised.  The ``6 n`` displaced structures are evaluated with
    :func:`digmat.calculators.calculate_batch` (batched for CHGNet/SevenNet).

    Parameters
    ----------
    atoms : ase.Atoms
        Structure (normally a minimum); not modified.
    calculator : ase.calculators.calculator.Calculator
    indices : sequence of int
        The ``n`` atoms whose coordinates are displaced.
    delta : float, default 0.01
        Displacement, Å.
    batch_size : int, default 16
        Structures per network call for batched potentials.

    Returns
    -------
    numpy.ndarray
        Hessian, shape ``(3n, 3n)``, eV/Å², ordered atom by atom (x, y, z).
    """
    from digmat.calculators import calculate_batch

    idx = np.asarray(list(indices), int).reshape(-1)
    if not len(idx):
        raise ValueError("indices is empty: no atoms to displace")
    if idx.min() < 0 or idx.max() >= len(atoms) or len(set(idx.tolist())) != len(idx):
        raise ValueError(f"indices must be distinct atom indices in [0, {len(atoms)}), got {idx.tolist()}")
    if not delta > 0:
        raise ValueError(f"delta must be positive, got {delta}")
    base = atoms.copy()
    base.set_constraint()  # forces on every displaced atom, fixed or not
    base.calc = None
    images = []
    for a in idx:
        for alpha in range(3):
            for sign in (1.0, -1.0):
                image = base.copy()
                image.positions[a, alpha] += sign * delta
                images.append(image)
    done = calculate_batch(images, calculator, batch_size=batch_size)
    forces = np.array([d.get_forces()[idx].reshape(-1) for d in done])  # (6n, 3n)
    hessian = -(forces[0::2] - forces[1::2]) / (2.0 * delta)
    return 0.5 * (hessian + hessian.T)


@dataclass(frozen=True)
class Vibrations:
    """Harmonic modes of a structure (:func:`vibrational_analysis`).

    Attributes
    ----------
    energies : numpy.ndarray
        ``ħω`` of each mode, eV, shape ``(3n,)``, ascending; an imaginary
        mode is stored as minus its magnitude.
    n_imaginary : int
        Modes with imaginary frequency of magnitude above ``imaginary_tolerance``
        (the structure is a saddle point, not a minimum).
    n_soft : int
        Modes (real, or imaginary within tolerance) below ``floor``.
    floor : float
        Floor of the vibrational energies, eV.
    """

    energies: np.ndarray
    n_imaginary: int
    n_soft: int
    floor: float

    @property
    def is_minimum(self) -> bool:
        """True when no mode is (significantly) imaginary."""
        return self.n_imaginary == 0

    def clipped(self) -> np.ndarray:
        """Vibrational energies with every mode below the floor (or imaginary) set to it, eV."""
        return np.maximum(self.energies, self.floor)


def vibrational_analysis(
    hessian: np.ndarray,
    masses: Sequence[float],
    *,
    floor: float = VIB_FLOOR,
    imaginary_tolerance: float = 0.005,
) -> Vibrations:
    """Normal-mode energies from a Cartesian Hessian.

    Parameters
    ----------
    hessian : numpy.ndarray
        Shape ``(3n, 3n)``, eV/Å² (symmetrised here).
    masses : sequence of float
        The ``n`` atomic masses, amu.
    floor : float, default 0.012
        Vibrational energies below it (eV) count as soft.
    imaginary_tolerance : float, default 0.005
        Imaginary modes smaller than this (eV; finite-difference noise) are
        counted as soft, not imaginary.

    Returns
    -------
    Vibrations
    """
    h = np.asarray(hessian, float)
    m = np.asarray(masses, float).reshape(-1)
    if h.ndim != 2 or h.shape != (3 * len(m), 3 * len(m)):
        raise ValueError(f"hessian must have shape (3n, 3n) = {(3 * len(m),) * 2} for {len(m)} masses, got {h.shape}")
    if not np.all(np.isfinite(h)) or (m <= 0).any():
        raise ValueError("hessian must be finite and masses positive")
    inv_sqrt = np.repeat(1.0 / np.sqrt(m), 3)
    dyn = 0.5 * (h + h.T) * np.outer(inv_sqrt, inv_sqrt)
    eig = np.linalg.eigvalsh(dyn)  # eV / (Å² amu)
    energies = np.sign(eig) * HBAR_OMEGA * np.sqrt(np.abs(eig))
    imaginary = energies < -imaginary_tolerance
    soft = ~imaginary & (energies < floor)
    return Vibrations(np.sort(energies), int(imaginary.sum()), int(soft.sum()), float(floor))


def harmonic_free_energy(vib_energies: Sequence[float] | Vibrations, temperature: float,
                         *, floor: float = VIB_FLOOR) -> float:
    """Harmonic vibrational Helmholtz free energy (zero-point + thermal), eV.

    ``F = Σ_i [ε_i / 2 + k_B T ln(1 − exp(−ε_i / k_B T))]`` with every
    ``ε_i`` below ``floor`` (imaginary modes, stored negative, included)
    raised to ``floor``.

    Parameters
    ----------
    vib_energies : sequence of float or Vibrations
        Mode energies ``ħω``, eV (a :class:`Vibrations` uses its own floor).
    temperature : float
        K (≥ 0; at 0 K only the zero-point energy remains).
    floor : float, default 0.012
        eV.

    Returns
    -------
    float
    """
    if isinstance(vib_energies, Vibrations):
        eps = vib_energies.clipped()
    else:
        eps = np.maximum(np.asarray(vib_energies, float).reshape(-1), floor)
    if not temperature >= 0:
        raise ValueError(f"temperature must be >= 0 K, got {temperature}")
    zpe = 0.5 * eps.sum()
    if temperature == 0:
        return float(zpe)
    kt = units.kB * temperature
    return float(zpe + kt * np.log1p(-np.exp(-eps / kt)).sum())


def boltzmann_probabilities(
    free_energies: Sequence[float], multiplicities: Sequence[int] | None, temperature: float
) -> np.ndarray:
    """``p_i = g_i exp(−G_i / k_B T) / Σ_j g_j exp(−G_j / k_B T)``.

    Parameters
    ----------
    free_energies : sequence of float
        ``G_i = E_i + F_vib,i(T)``, eV.
    multiplicities : sequence of int, optional
        ``g_i`` (number of equivalent copies in the cell); 1 when omitted.
    temperature : float
        K, > 0.

    Returns
    -------
    numpy.ndarray
        Probabilities, shape ``(len(free_energies),)``, summing to 1.
    """
    g = np.asarray(free_energies, float).reshape(-1)
    if not len(g):
        raise ValueError("no free energies given")
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0 K, got {temperature}")
    mult = np.ones_like(g) if multiplicities is None else np.asarray(multiplicities, float).reshape(-1)
    if mult.shape != g.shape or (mult <= 0).any():
        raise ValueError("multiplicities must be positive, one per free energy")
    logw = np.log(mult) - (g - g.min()) / (units.kB * temperature)
    w = np.exp(logw - logw.max())
    return w / w.sum()


# --------------------------------------------------------------------------
# symmetry copies of a configuration
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class SymmetryImage:
    """One symmetry operation of a slab in Cartesian form, ``x → A x + b``.

    Attributes
    ----------
    operation : int
        Index into the :class:`~digmat.adsorption.SlabSymmetry` operations.
    linear : numpy.ndarray
        ``A``, shape (3, 3).
    shift : numpy.ndarray
        ``b``, Å, shape (3,).
    permutation : numpy.ndarray
        Slab atom ``s`` maps onto the site of slab atom ``permutation[s]``,
        shape ``(n_slab,)``.
    """

    operation: int
    linear: np.ndarray
    shift: np.ndarray
    permutation: np.ndarray

    def apply(self, atoms: Atoms, reference: Atoms) -> Atoms:
        """Image of ``atoms`` (slab + adsorbate) under this operation.

        Substrate atoms keep ``reference``'s (the bare slab's) positions plus
        their rotated displacements from it, so fixed atoms stay exactly in
        place; adsorbate atoms (tag 2) are mapped by ``x → A x + b``.
        """
        out = atoms.copy()
        pos = atoms.positions
        n_ref = len(reference)
        new = pos.copy()
        disp = pos[:n_ref] - reference.positions
        new[self.permutation[:n_ref]] = reference.positions[self.permutation[:n_ref]] + disp @ self.linear.T
        new[n_ref:] = pos[n_ref:] @ self.linear.T + self.shift
        out.positions = new
        return out

    def map_vectors(self, vectors: np.ndarray) -> np.ndarray:
        """Per-atom vectors (forces, displacements; shape ``(N, 3)``) carried along by :meth:`apply`."""
        vectors = np.asarray(vectors, float)
        rotated = vectors @ self.linear.T
        out = rotated.copy()
        n = len(self.permutation)
        out[self.permutation] = rotated[:n]
        return out


def symmetry_images(slab: Atoms, symmetry: SlabSymmetry | None = None, *, symprec: float = 0.05) -> list[SymmetryImage]:
    """The slab's normal-preserving symmetry operations as Cartesian maps with atom permutations.

    Parameters
    ----------
    slab : ase.Atoms
        The bare slab (tags 0/1); adsorbate atoms appended after it are
        mapped by :meth:`SymmetryImage.apply`.
    symmetry : SlabSymmetry, optional
        Precomputed symmetry of ``slab``.
    symprec : float, default 0.05
        spglib tolerance when ``symmetry`` is not given, Å.

    Returns
    -------
    list of SymmetryImage
        One per operation (the identity included).
    """
    symmetry = symmetry or SlabSymmetry(slab, symprec=symprec)
    cell = slab.cell.array
    inv = np.linalg.inv(cell)
    sub = symmetry.substrate
    frac = np.linalg.solve(cell.T, slab.positions[sub].T).T
    tol = max(2.0 * symprec, 1e-3)
    out = []
    for k, (rot, trans) in enumerate(zip(symmetry.rotations, symmetry.translations, strict=True)):
        linear = cell.T @ rot @ inv.T
        image = frac @ rot.T + trans
        delta = image[:, None, :] - frac[None, :, :]
        err = np.linalg.norm((delta - np.round(delta)) @ cell, axis=2)
        err[slab.numbers[sub][:, None] != slab.numbers[sub][None, :]] = np.inf
        target = err.argmin(axis=1)
        if not np.all(err[np.arange(len(sub)), target] < tol) or len(set(target.tolist())) != len(sub):
            continue
        perm = np.arange(len(slab))
        perm[sub] = sub[target]  # tag-2 atoms of a non-bare slab stay put
        out.append(SymmetryImage(k, linear, cell.T @ trans, perm))
    return out


def inplane_distances(a: np.ndarray, b: np.ndarray, cell: np.ndarray) -> np.ndarray:
    """Distances between positions ``a`` (n, 3) and ``b`` (m, 3), Å, modulo the in-plane lattice
    translations of ``cell`` (the slab's first two vectors); shape ``(n, m)``."""
    delta = a[:, None, :] - b[None, :, :]
    frac = np.linalg.solve(cell.T, delta.reshape(-1, 3).T).T
    frac[:, :2] -= np.round(frac[:, :2])
    return np.linalg.norm(frac @ cell, axis=1).reshape(len(a), len(b))


def _same_configuration(a: np.ndarray, b: np.ndarray, numbers: np.ndarray, cell: np.ndarray, tol: float) -> bool:
    """Same set of (element, position) modulo in-plane lattice translations, atoms of one element interchangeable."""
    dist = inplane_distances(a, b, cell)
    dist[numbers[:, None] != numbers[None, :]] = np.inf
    used = np.zeros(len(b), bool)
    for i in np.argsort(dist.min(axis=1)):
        free = np.where(used, np.inf, dist[i])
        j = int(free.argmin())
        if free[j] > tol:
            return False
        used[j] = True
    return True


def site_multiplicity(
    atoms: Atoms,
    slab: Atoms,
    *,
    images: Sequence[SymmetryImage] | None = None,
    tolerance: float = 0.5,
) -> tuple[int, list[int]]:
    """Number of distinct copies of an adsorbate configuration in the cell.

    The orbit of the whole adsorbate (all tag-2 atoms) under the slab's
    symmetry operations, counted modulo in-plane lattice translations of the
    cell; configurations whose atoms coincide element by element within
    ``tolerance`` are one copy.  An O atom in an fcc hollow of an
    ``m × n`` fcc(111) cell has ``m n`` copies, an atom ontop as many as
    there are surface atoms.

    Parameters
    ----------
    atoms : ase.Atoms
        Slab (same atoms and order as ``slab``) followed by the adsorbate.
    slab : ase.Atoms
        The bare slab.
    images : sequence of SymmetryImage, optional
        From :func:`symmetry_images` (computed when omitted).
    tolerance : float, default 0.5
        Distance below which two atom positions are the same, Å.  Distinct
        sites of a metal surface are ≥ 1.3 Å apart; relaxed structures on
        flat energy surfaces sit up to a few tenths of an Å off their ideal
        site, and copies closer than this are one basin anyway.

    Returns
    -------
    tuple of (int, list of int)
        The multiplicity ``g`` and, for each distinct copy, the index (into
        ``images``) of one operation producing it.
    """
    if len(atoms) <= len(slab) or not np.array_equal(atoms.numbers[: len(slab)], slab.numbers):
        raise ValueError("atoms must be the slab (same atoms, same order) followed by adsorbate atoms")
    images = list(images) if images is not None else symmetry_images(slab)
    ads = np.arange(len(slab), len(atoms))
    numbers = atoms.numbers[ads]
    cell = atoms.cell.array
    distinct: list[np.ndarray] = []
    which: list[int] = []
    for k, image in enumerate(images):
        pos = atoms.positions[ads] @ image.linear.T + image.shift
        if not any(_same_configuration(pos, d, numbers, cell, tolerance) for d in distinct):
            distinct.append(pos)
            which.append(k)
    return len(distinct), which
