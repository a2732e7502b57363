"""Orthogonal sp³ tight-binding model for carbon (Xu, Wang, Chan & Ho 1992).

Model
-----
C. H. Xu, C. Z. Wang, C. T. Chan and K. M. Ho, *J. Phys.: Condens. Matter*
**4**, 6047 (1992).  Each carbon atom carries one s and three p orbitals
(order ``s, px, py, pz``), orthogonal basis, two-centre Slater–Koster
hoppings

.. math::

    V_\\lambda(r) = V_\\lambda(r_0)\\, s(r), \\qquad
    s(r) = (r_0/r)^{n} \\exp\\{n[-(r/r_c)^{n_c} + (r_0/r_c)^{n_c}]\\}
    \\quad (r \\le r_1),

continued for ``r1 < r < r_m`` by the cubic ``t(x) = c0 + c1 x + c2 x² + c3 x³``
(``x = r − r1``) that matches ``s`` and ``s'`` at ``r1`` and vanishes with
zero slope at ``r_m`` (:func:`tail_coefficients`); zero beyond ``r_m``.
Parameters in :data:`XU_CARBON` (Å, eV).  Band gaps: 4 valence electrons
per atom fill ``2N`` of the ``4N`` bands of an ``N``-atom cell (:mod:`digmat.design.bandgap`
finds the gap between them).

Bloch sums use the lattice-periodic gauge
``H_{iα,jβ}(k) = Σ_R h_{αβ}(r_j + R − r_i) exp(2πi k·n_R)`` with ``k`` in
fractional reciprocal coordinates; eigenvalues do not depend on the gauge.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from digmat.design.tb_geometry import (
    DEFAULT_KPT_DENSITY,
    MIN_DISTANCE,
    as_atoms,
    resolve_kpts,
    validated_geometry,
    kmesh,
    kpts_from_density,
)

__all__ = [
    "DEFAULT_KPT_DENSITY",
    "XU_CARBON",
    "CarbonTightBinding",
    "XuCarbonParameters",
    "carbon_band_structure",
    "hopping_scaling",
    "kmesh",
    "kpts_from_density",
    "slater_koster_blocks",
    "tail_coefficients",
]

_CHUNK_BYTES = 64 * 2**20  # memory budget for one batch of H(k)


@dataclass(frozen=True)
class XuCarbonParameters:
    """Parameters of the Xu–Wang–Chan–Ho carbon tight-binding model.

    Energies in eV, lengths in Å.  The defaults are the published values.

    Attributes
    ----------
    e_s, e_p : float
        On-site energies of the 2s and 2p orbitals, eV.
    v_sss, v_sps, v_pps, v_ppp : float
        Slater–Koster integrals ``V_ssσ, V_spσ, V_ppσ, V_ppπ`` at ``r0``, eV.
    r0 : float
        Reference (diamond) bond length, Å.
    n, n_c, r_c : float
        Exponents and cutoff length (Å) of the scaling function ``s(r)``.
    r1, r_m : float
        Start and end of the cubic tail, Å; hoppings vanish for ``r ≥ r_m``.
    """

    e_s: float = -2.99
    e_p: float = 3.71
    v_sss: float = -5.0
    v_sps: float = 4.7
    v_pps: float = 5.5
    v_ppp: float = -1.55
    r0: float = 1.536329
    n: float = 2.0
    n_c: float = 6.5
    r_c: float = 2.18
    r1: float = 2.45
    r_m: float = 2.6


XU_CARBON = XuCarbonParameters()


def _s_core(r: np.ndarray, p: XuCarbonParameters) -> tuple[np.ndarray, np.ndarray]:
    """Scaling function ``s(r)`` of the exponential part and its derivative (Å⁻¹)."""
    expo = p.n * (-((r / p.r_c) ** p.n_c) + (p.r0 / p.r_c) ** p.n_c)
    s = (p.r0 / r) ** p.n * np.exp(expo)
    ds = s * (-p.n / r - p.n * p.n_c * r ** (p.n_c - 1) / p.r_c**p.n_c)
    return s, ds


def tail_coefficients(params: XuCarbonParameters = XU_CARBON) -> tuple[float, float, float, float]:
    """Coefficients ``(c0, c1, c2, c3)`` of the cubic tail of ``s(r)``.

    With ``L = r_m − r1``, ``s1 = s(r1)`` and ``s1' = s'(r1)`` the Hermite
    conditions ``t(0) = s1, t'(0) = s1', t(L) = t'(L) = 0`` give

    ``c0 = s1``, ``c1 = s1'``, ``c2 = −(3 s1 + 2 s1' L)/L²``,
    ``c3 = (2 s1 + s1' L)/L³``  (units Å⁻ᵏ for ``ck``).
    """
    r1 = np.array(params.r1)
    s1, ds1 = (float(v) for v in _s_core(r1, params))
    L = params.r_m - params.r1
    return s1, ds1, -(3.0 * s1 + 2.0 * ds1 * L) / L**2, (2.0 * s1 + ds1 * L) / L**3


def hopping_scaling(r: np.ndarray | float, params: XuCarbonParameters = XU_CARBON) -> np.ndarray:
    """Distance scaling ``s(r)`` of the hopping integrals (``s(r0) = 1``).

    Parameters
    ----------
    r : array_like, shape (...)
        Interatomic distances, Å (positive).
    params : XuCarbonParameters

    Returns
    -------
    numpy.ndarray, shape (...)
        Dimensionless ``s(r)``: exponential form up to ``r1``, cubic tail on
        ``(r1, r_m)``, zero from ``r_m`` on.
    """
    r = np.asarray(r, dtype=float)
    out = np.zeros_like(r)
    core = r <= params.r1
    out[core] = _s_core(r[core], params)[0]
    tail = (r > params.r1) & (r < params.r_m)
    x = r[tail] - params.r1
    c0, c1, c2, c3 = tail_coefficients(params)
    out[tail] = c0 + x * (c1 + x * (c2 + x * c3))
    return out


class CarbonTightBinding:
    """Real-space Hamiltonian of one carbon structure, ready for Bloch sums.

    Parameters
    ----------
    atoms : ase.Atoms or pymatgen Structure
        Carbon-only structure.  Periodic directions (``pbc``) get lattice
        images; the cell must be non-degenerate along them.  Not modified.
    params : XuCarbonParameters

    Attributes
    ----------
    n_atoms, n_orbitals : int
        ``N`` and ``4N``.
    shifts : numpy.ndarray, shape (R, 3), int
        Lattice translations (in units of the cell vectors) carrying hoppings.
    h_real : numpy.ndarray, shape (R, 4N, 4N)
        Real-space blocks ``H_R``; ``H(k) = Σ_R H_R exp(2πi k·n_R)``, eV.
    min_distance : float
        Shortest interatomic distance, periodic images included, Å.

    Raises
    ------
    ValueError
        Non-carbon atoms, no atoms, NaN/inf coordinates or cell, a degenerate
        periodic cell, or atoms closer than 0.5 Å.
    """

    def __init__(self, atoms, params: XuCarbonParameters = XU_CARBON) -> None:
        atoms = as_atoms(atoms)
        self.params = params
        pos, cell, pbc = validated_geometry(atoms)
        self.n_atoms = len(pos)
        self.n_orbitals = 4 * self.n_atoms
        self.pbc = pbc
        self.cell = cell
        self._build(pos, cell, pbc)

    def _build(self, pos: np.ndarray, cell: np.ndarray, pbc: np.ndarray) -> None:
        p = self.params
        n = self.n_atoms
        if pbc.any():
            frac = np.linalg.solve(cell.T, pos.T).T
            frac[:, pbc] -= np.floor(frac[:, pbc])  # wrap along periodic axes (a copy)
            pos = frac @ cell
            spacing = abs(np.linalg.det(cell)) / np.linalg.norm(
                np.cross(cell[[1, 2, 0]], cell[[2, 0, 1]]), axis=1
            )
            nmax = np.where(pbc, np.floor(p.r_m / spacing).astype(int) + 1, 0)
        else:
            nmax = np.zeros(3, dtype=int)
        ranges = [np.arange(-m, m + 1) for m in nmax]
        all_shifts = np.stack(np.meshgrid(*ranges, indexing="ij"), -1).reshape(-1, 3)
        diff = pos[None, :, :] - pos[:, None, :]  # (N, N, 3): r_j − r_i
        ii, jj, rr, vv = [], [], [], []
        dmin = np.inf
        step = max(1, 200_000 // max(n * n, 1))
        for start in range(0, len(all_shifts), step):
            sh = all_shifts[start : start + step]
            vec = diff[None] + (sh @ cell)[:, None, None, :]  # (S, N, N, 3)
            dist = np.linalg.norm(vec, axis=-1)
            zero = np.all(sh == 0, axis=1)
            if zero.any():  # exclude the on-site term i == j, R = 0
                dist[zero, np.arange(n), np.arange(n)] = np.inf
            dmin = min(dmin, float(dist.min()) if dist.size else np.inf)
            s_idx, i_idx, j_idx = np.nonzero(dist < p.r_m)
            ii.append(i_idx)
            jj.append(j_idx)
            rr.append(s_idx + start)
            vv.append(vec[s_idx, i_idx, j_idx])
        self.min_distance = dmin
        if dmin < MIN_DISTANCE:
            raise ValueError(f"atoms overlap: shortest distance {dmin:.3f} Å < {MIN_DISTANCE} Å")
        ii, jj, rr = np.concatenate(ii), np.concatenate(jj), np.concatenate(rr)
        vv = np.concatenate(vv).reshape(-1, 3)
        zero_index = int(np.flatnonzero(np.all(all_shifts == 0, axis=1))[0])
        used, r_local = np.unique(np.concatenate([[zero_index], rr]), return_inverse=True)
        r_local = r_local[1:]
        self.shifts = all_shifts[used]
        h = np.zeros((len(used), 4 * n, 4 * n))
        r0_local = int(np.flatnonzero(used == zero_index)[0])
        diag = np.tile([p.e_s, p.e_p, p.e_p, p.e_p], n)
        h[r0_local, np.arange(4 * n), np.arange(4 * n)] = diag
        if len(ii):
            blocks = slater_koster_blocks(vv, p)  # (B, 4, 4)
            a = np.arange(4)
            rows = 4 * ii[:, None, None] + a[None, :, None]
            cols = 4 * jj[:, None, None] + a[None, None, :]
            h[r_local[:, None, None], rows, cols] = blocks
        self.h_real = h
        self._h_flat = h.reshape(len(used), -1)

    def hamiltonian(self, kpts: np.ndarray) -> np.ndarray:
        """Bloch Hamiltonians ``H(k)``.

        Parameters
        ----------
        kpts : numpy.ndarray, shape (K, 3)
            Fractional reciprocal coordinates.

        Returns
        -------
        numpy.ndarray, shape (K, 4N, 4N), complex
            Hermitian matrices, eV.
        """
        kpts = np.atleast_2d(np.asarray(kpts, dtype=float))
        phase = 2.0 * np.pi * kpts @ self.shifts.T  # (K, R)
        re = np.cos(phase) @ self._h_flat
        im = np.sin(phase) @ self._h_flat
        m = self.n_orbitals
        return (re + 1j * im).reshape(len(kpts), m, m)

    def eigenvalues(self, kpts: np.ndarray) -> np.ndarray:
        """Band energies at ``kpts`` (shape (K, 3), fractional): (K, 4N), sorted, eV."""
        kpts = np.atleast_2d(np.asarray(kpts, dtype=float))
        m = self.n_orbitals
        chunk = max(1, _CHUNK_BYTES // (16 * m * m * 3))
        out = np.empty((len(kpts), m))
        for s in range(0, len(kpts), chunk):
            out[s : s + chunk] = np.linalg.eigvalsh(self.hamiltonian(kpts[s : s + chunk]))
        return out


def slater_koster_blocks(vectors: np.ndarray, params: XuCarbonParameters = XU_CARBON) -> np.ndarray:
    """Two-centre s,p hopping blocks ``⟨iα|H|jβ⟩`` for bond vectors ``r_j − r_i``.

    Parameters
    ----------
    vectors : numpy.ndarray, shape (B, 3)
        Bond vectors from atom ``i`` to atom ``j``, Å.
    params : XuCarbonParameters

    Returns
    -------
    numpy.ndarray, shape (B, 4, 4)
        Rows: orbitals ``s, px, py, pz`` of ``i``; columns: those of ``j``; eV.
        ``E_ss = V_ssσ``, ``E_s,pβ = l_β V_spσ``, ``E_pα,s = −l_α V_spσ``,
        ``E_pα,pβ = l_α l_β (V_ppσ − V_ppπ) + δ_αβ V_ppπ`` (all times ``s(r)``),
        with ``l`` the direction cosines of ``r_j − r_i``.
    """
    vectors = np.asarray(vectors, dtype=float).reshape(-1, 3)
    r = np.linalg.norm(vectors, axis=1)
    lmn = vectors / r[:, None]
    s = hopping_scaling(r, params)
    out = np.empty((len(r), 4, 4))
    out[:, 0, 0] = params.v_sss
    out[:, 0, 1:] = lmn * params.v_sps
    out[:, 1:, 0] = -lmn * params.v_sps
    out[:, 1:, 1:] = lmn[:, :, None] * lmn[:, None, :] * (params.v_pps - params.v_ppp)
    out[:, 1:, 1:] += np.eye(3) * params.v_ppp
    return out * s[:, None, None]


def carbon_band_structure(
    atoms,
    kpts: Sequence[int] | np.ndarray = (1, 1, 1),
    *,
    gamma_centered: bool = True,
    params: XuCarbonParameters = XU_CARBON,
) -> np.ndarray:
    """Tight-binding band energies of a carbon structure.

    Parameters
    ----------
    atoms : ase.Atoms or pymatgen Structure
        Carbon-only structure (not modified).
    kpts : (n1, n2, n3) or array, shape (K, 3)
        Mesh size (see :func:`kmesh`) or explicit fractional k-points.
    gamma_centered : bool
        Mesh type when ``kpts`` is a size.
    params : XuCarbonParameters

    Returns
    -------
    numpy.ndarray, shape (K, 4N)
        Sorted eigenvalues per k-point, eV.
    """
    model = CarbonTightBinding(atoms, params)
    return model.eigenvalues(resolve_kpts(kpts, gamma_centered))
