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
per atom fill ``2N`` of the ``4N`` bands of an ``N``-atom cell.

Bloch sums use the lattice-periodic gauge
``H_{iα,jβ}(k) = Σ_R h_{αβ}(r_j + R − r_i) exp(2πi k·n_R)`` with ``k`` in
fractional reciprocal coordinates; eigenvalues do not depend on the gauge.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from digmat.design.tb_geometry import (
    DEFAULT_KPT_DENSITY,
    MIN_DISTANCE,
    as_atoms,
    inversion_reduced,
    resolve_kpts,
    validated_geometry,
    kmesh,
    kpts_from_density,
)

__all__ = [
    "DEFAULT_KPT_DENSITY",
    "XU_CARBON",
    "BandGap",
    "CarbonTightBinding",
    "TightBindingGap",
    "XuCarbonParameters",
    "band_gap",
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


@dataclass(frozen=True)
class BandGap:
    """Band gap of a carbon structure from the tight-binding model.

    Attributes
    ----------
    gap : float
        ``max(cbm − vbm, 0)``, eV.  Metals and semimetals (band overlap,
        ``cbm ≤ vbm``) are reported as 0 — the negative difference is clipped.
    vbm, cbm : float
        Valence-band maximum (band ``2N − 1``) and conduction-band minimum
        (band ``2N``), eV.
    direct : bool
        Whether VBM and CBM lie at the same k-point (within 1e-3 eV of the
        smallest vertical gap).
    kpts : tuple of int
        Mesh size ``(n1, n2, n3)`` used (Γ-centred unless stated).
    direct_gap : float
        Smallest vertical gap ``min_k [E_2N(k) − E_2N−1(k)]``, eV (≥ 0).
    k_vbm, k_cbm : tuple of float
        Fractional k-points of the VBM and CBM.
    refined : bool
        Whether the band edges were refined off the mesh.
    """

    gap: float
    vbm: float
    cbm: float
    direct: bool
    kpts: tuple[int, int, int]
    direct_gap: float = field(default=0.0)
    k_vbm: tuple[float, float, float] = (0.0, 0.0, 0.0)
    k_cbm: tuple[float, float, float] = (0.0, 0.0, 0.0)
    refined: bool = False

    @property
    def raw_gap(self) -> float:
        """``cbm − vbm`` before clipping, eV (negative: band overlap)."""
        return self.cbm - self.vbm

    @property
    def is_metal(self) -> bool:
        """True when the gap was clipped to zero (``cbm ≤ vbm``)."""
        return self.cbm <= self.vbm


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


def band_gap(
    atoms,
    kpts: Sequence[int] | None = None,
    *,
    kpt_density: float = DEFAULT_KPT_DENSITY,
    refine: bool = True,
    params: XuCarbonParameters = XU_CARBON,
) -> BandGap:
    """Tight-binding band gap of a carbon structure.

    Parameters
    ----------
    atoms : ase.Atoms or pymatgen Structure
        Carbon-only structure, 4 valence electrons per atom (not modified).
    kpts : (n1, n2, n3), optional
        Γ-centred mesh size; default from ``kpt_density``
        (:func:`kpts_from_density`).
    kpt_density : float
        k-points per Å⁻¹ for the automatic mesh.
    refine : bool
        Refine VBM, CBM and the smallest vertical gap off the mesh by a
        Nelder–Mead search started from the best mesh points (can only lower
        the gap; finds Dirac points that a mesh misses).
    params : XuCarbonParameters

    Returns
    -------
    BandGap
        ``gap`` in eV, 0 for metals/semimetals (clipped; see ``raw_gap``).
    """
    atoms = as_atoms(atoms)
    model = CarbonTightBinding(atoms, params)
    size = tuple(int(k) for k in (kpts if kpts is not None else kpts_from_density(atoms, kpt_density)))
    if len(size) != 3 or min(size) < 1:
        raise ValueError(f"kpts must be three positive integers, got {kpts}")
    size = tuple(s if per else 1 for s, per in zip(size, model.pbc))
    k = inversion_reduced(size)
    e = model.eigenvalues(k)
    nv = 2 * model.n_atoms
    vb, cb = e[:, nv - 1], e[:, nv]
    iv, ic, idir = int(np.argmax(vb)), int(np.argmin(cb)), int(np.argmin(cb - vb))
    vbm, k_vbm = float(vb[iv]), k[iv]
    cbm, k_cbm = float(cb[ic]), k[ic]
    direct_gap, k_dir = float(cb[idir] - vb[idir]), k[idir]
    if refine and model.pbc.any():
        step = np.where(model.pbc, 1.0 / np.array(size), 0.0)
        v, kv = _refine(model, k_vbm, step, lambda ev: -ev[nv - 1])
        if -v > vbm:
            vbm, k_vbm = -v, kv
        c, kc = _refine(model, k_cbm, step, lambda ev: ev[nv])
        if c < cbm:
            cbm, k_cbm = c, kc
        d, kd = _refine(model, k_dir, step, lambda ev: ev[nv] - ev[nv - 1])
        if d < direct_gap:
            direct_gap, k_dir = d, kd
    direct_gap = max(direct_gap, 0.0)
    gap = max(cbm - vbm, 0.0)
    return BandGap(
        gap=gap,
        vbm=vbm,
        cbm=cbm,
        direct=bool(direct_gap - gap < 1e-3),
        kpts=size,
        direct_gap=direct_gap,
        k_vbm=tuple(float(x) for x in k_vbm),
        k_cbm=tuple(float(x) for x in k_cbm),
        refined=bool(refine and model.pbc.any()),
    )


def _refine(model: CarbonTightBinding, k0: np.ndarray, step: np.ndarray, objective) -> tuple[float, np.ndarray]:
    """Minimise ``objective(eigenvalues(k))`` near ``k0`` along periodic axes."""
    from scipy.optimize import minimize

    free = np.flatnonzero(step > 0)

    def f(x: np.ndarray) -> float:
        k = np.array(k0, dtype=float)
        k[free] = x
        return float(objective(np.linalg.eigvalsh(model.hamiltonian(k[None])[0])))

    x0 = np.asarray(k0, dtype=float)[free]
    simplex = np.vstack([x0, x0 + np.diag(step[free])])
    res = minimize(
        f, x0, method="Nelder-Mead",
        options={"initial_simplex": simplex, "xatol": 1e-5, "fatol": 1e-6, "maxfev": 400},
    )
    best_val, best_x = (float(res.fun), res.x) if res.fun <= f(x0) else (f(x0), x0)
    k = np.array(k0, dtype=float)
    k[free] = best_x
    return best_val, k


def _gap_worker(args) -> BandGap | None:
    structure, kpts, kpt_density, refine, params, on_error = args
    try:
        return band_gap(structure, kpts, kpt_density=kpt_density, refine=refine, params=params)
    except ValueError:
        if on_error == "raise":
            raise
        return None


class TightBindingGap:
    """Band-gap oracle for many carbon structures (list in, array out).

    Parameters
    ----------
    kpts : (n1, n2, n3), optional
        Fixed mesh for every structure; default: automatic from ``kpt_density``.
    kpt_density : float
        k-points per Å⁻¹ for the automatic mesh.
    refine : bool
        Off-mesh refinement of the band edges (see :func:`band_gap`).
    n_jobs : int
        Worker processes (``1``: in-process; ``spawn`` start method otherwise).
    progress : bool
        Show a tqdm progress bar.
    on_error : {"raise", "nan"}
        Invalid structures (non-carbon, overlapping atoms, …) raise
        ``ValueError`` or give NaN.
    params : XuCarbonParameters

    Examples
    --------
    >>> oracle = TightBindingGap(progress=False)
    >>> gaps = oracle([bulk("C", "diamond", a=3.567)])   # doctest: +SKIP
    """

    def __init__(
        self,
        kpts: Sequence[int] | None = None,
        *,
        kpt_density: float = DEFAULT_KPT_DENSITY,
        refine: bool = True,
        n_jobs: int = 1,
        progress: bool = True,
        on_error: str = "raise",
        params: XuCarbonParameters = XU_CARBON,
    ) -> None:
        if on_error not in ("raise", "nan"):
            raise ValueError(f"on_error must be 'raise' or 'nan', got {on_error!r}")
        if int(n_jobs) < 1:
            raise ValueError(f"n_jobs must be >= 1, got {n_jobs}")
        self.kpts = None if kpts is None else tuple(int(k) for k in kpts)
        self.kpt_density = float(kpt_density)
        self.refine = bool(refine)
        self.n_jobs = int(n_jobs)
        self.progress = bool(progress)
        self.on_error = on_error
        self.params = params

    def details(self, structures) -> list[BandGap | None]:
        """Full :class:`BandGap` per structure (``None`` where invalid and ``on_error='nan'``)."""
        from tqdm.auto import tqdm

        structures = [as_atoms(s) for s in structures]
        jobs = [
            (s, self.kpts, self.kpt_density, self.refine, self.params, self.on_error) for s in structures
        ]
        bar = {"total": len(jobs), "disable": not self.progress, "desc": "TB band gaps", "unit": "struct"}
        if self.n_jobs == 1 or len(jobs) < 2:
            return [_gap_worker(j) for j in tqdm(jobs, **bar)]
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(self.n_jobs, mp_context=mp.get_context("spawn")) as pool:
            return list(tqdm(pool.map(_gap_worker, jobs, chunksize=4), **bar))

    def __call__(self, structures) -> np.ndarray:
        """Band gaps, eV, shape (M,) for M structures (NaN where invalid, if allowed)."""
        return np.array([np.nan if r is None else r.gap for r in self.details(structures)], dtype=float)
