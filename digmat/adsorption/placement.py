"""Initial adsorbate placements on a slab: heuristic sites and random ones (AdsorbML).

Heuristic placements put the adsorbate on each symmetry-distinct ontop, bridge
and hollow site that pymatgen's
:class:`~pymatgen.analysis.adsorption.AdsorbateSiteFinder` finds on the
surface atoms (tag 1); random placements put it over a point drawn uniformly
in the surface cell.  In both, the adsorbate's first binding atom
(``info["binding_indices"][0]``) sits over the point with the rest of the
molecule pointing away from the surface (the vector binding atom → centroid
of the other atoms along the normal), turned about the normal by an angle
and tilted by up to ``max_tilt``; the molecule is then lowered until its
closest approach to any slab atom (periodic images included) equals the sum
of covalent radii plus ``gap`` (fairchem's ``interstitial_gap``, 0.1 Å).

Placed systems are the slab's atoms (same order) followed by the adsorbate's
(tag 2), with FixAtoms on tag 0 — and on tag 1 when the surface is not
relaxed.  Lengths in Å, angles in degrees.
"""

from __future__ import annotations

import math

import numpy as np
from ase import Atoms
from ase.constraints import FixAtoms
from ase.data import covalent_radii

from digmat.geometry import frac_c, surface_normal, vacuum_gap

__all__ = [
    "DEFAULT_GAP",
    "heuristic_placements",
    "make_placements",
    "place_adsorbate",
    "random_placements",
    "surface_sites",
]

#: Extra clearance beyond the sum of covalent radii when lowering an adsorbate, Å.
DEFAULT_GAP = 0.1


def _check_inputs(slab: Atoms, adsorbate: Atoms) -> None:
    if not isinstance(slab, Atoms) or len(slab) == 0:
        raise ValueError("slab must be a non-empty ase.Atoms")
    if not isinstance(adsorbate, Atoms) or len(adsorbate) == 0:
        raise ValueError("adsorbate must be a non-empty ase.Atoms (see get_adsorbate)")
    tags = slab.get_tags()
    if (tags == 2).any():
        raise ValueError(
            f"the slab already carries adsorbate atoms (tag 2: {np.flatnonzero(tags == 2)[:10].tolist()}); "
            "placements need the bare slab"
        )
    if not (tags == 1).any():
        raise ValueError("the slab has no surface atoms (tag 1); tag it with infer_tags or build_slab")
    binding = adsorbate.info.get("binding_indices")
    if binding is None or not len(binding):
        raise ValueError("adsorbate.info['binding_indices'] is missing; build it with get_adsorbate")
    if not all(-len(adsorbate) <= int(i) < len(adsorbate) for i in binding):
        raise ValueError(f"binding_indices {list(binding)} out of range for {len(adsorbate)} atoms")


def _unwrapped_positions(slab: Atoms) -> np.ndarray:
    """Slab positions moved by whole ``c`` vectors so that the slab is contiguous along c."""
    gap = vacuum_gap(slab)
    origin = gap.bottom - 0.5 * gap.gap  # middle of the vacuum
    k = np.floor(frac_c(slab) - origin)
    return slab.positions - k[:, None] * slab.cell.array[2]


def _rotation(axis: np.ndarray, angle: float) -> np.ndarray:
    """Rotation matrix by ``angle`` radians about unit ``axis`` (Rodrigues), shape (3, 3)."""
    axis = np.asarray(axis, float) / np.linalg.norm(axis)
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + math.sin(angle) * k + (1 - math.cos(angle)) * k @ k


def _align(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Rotation matrix taking direction ``u`` onto direction ``v``."""
    u = u / np.linalg.norm(u)
    v = v / np.linalg.norm(v)
    axis = np.cross(u, v)
    s, c = np.linalg.norm(axis), float(np.dot(u, v))
    if s < 1e-10:
        if c > 0:
            return np.eye(3)
        perp = np.cross(u, [1.0, 0.0, 0.0])
        if np.linalg.norm(perp) < 1e-6:
            perp = np.cross(u, [0.0, 1.0, 0.0])
        return _rotation(perp, math.pi)
    return _rotation(axis, math.atan2(s, c))


def _horizontal_basis(normal: np.ndarray, cell: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    e1 = cell[0] - np.dot(cell[0], normal) * normal
    e1 /= np.linalg.norm(e1)
    return e1, np.cross(normal, e1)


def _oriented(adsorbate: Atoms, normal: np.ndarray, cell: np.ndarray, angle: float,
              tilt: float, tilt_azimuth: float) -> np.ndarray:
    """Adsorbate positions relative to its binding atom, oriented on the surface, shape (n, 3)."""
    b = int(adsorbate.info["binding_indices"][0]) % len(adsorbate)
    rel = adsorbate.positions - adsorbate.positions[b]
    if len(adsorbate) > 1:
        up = np.delete(rel, b, axis=0).mean(axis=0)
        if np.linalg.norm(up) > 1e-6:
            rel = rel @ _align(up, normal).T
    rel = rel @ _rotation(normal, math.radians(angle)).T
    if tilt:
        e1, e2 = _horizontal_basis(normal, cell)
        phi = math.radians(tilt_azimuth)
        axis = math.cos(phi) * e1 + math.sin(phi) * e2
        rel = rel @ _rotation(axis, math.radians(tilt)).T
    return rel


def _lowest_height(slab_pos: np.ndarray, slab_radii: np.ndarray, cell: np.ndarray,
                   normal: np.ndarray, ads_pos: np.ndarray, ads_radii: np.ndarray, gap: float) -> float:
    """Smallest shift ``h`` along the normal keeping every adsorbate–slab distance ≥ r_i + r_j + gap."""
    reach = float((ads_radii.max() + slab_radii.max() + gap) + np.ptp(ads_pos, axis=0).max())
    area = np.linalg.norm(np.cross(cell[0], cell[1]))
    na = math.ceil(reach / (area / np.linalg.norm(cell[1]))) + 1
    nb = math.ceil(reach / (area / np.linalg.norm(cell[0]))) + 1
    shifts = np.array([(i, j) for i in range(-na, na + 1) for j in range(-nb, nb + 1)], float)
    images = (slab_pos[None] + (shifts @ cell[:2])[:, None]).reshape(-1, 3)  # (S*N, 3)
    radii = np.tile(slab_radii, len(shifts))
    d = ads_pos[:, None, :] - images[None, :, :]  # (n, S*N, 3)
    v = d @ normal
    lateral2 = np.einsum("ijk,ijk->ij", d, d) - v**2
    r = ads_radii[:, None] + radii[None, :] + gap
    need = np.where(lateral2 < r**2, np.sqrt(np.clip(r**2 - lateral2, 0, None)) - v, -np.inf)
    return float(need.max())


def place_adsorbate(
    slab: Atoms,
    adsorbate: Atoms,
    point,
    *,
    angle: float = 0.0,
    tilt: float = 0.0,
    tilt_azimuth: float = 0.0,
    gap: float = DEFAULT_GAP,
    relax_surface: bool = True,
) -> Atoms:
    """Put ``adsorbate`` on ``slab`` over an in-plane point.

    Parameters
    ----------
    slab : ase.Atoms
        Bare slab with OC20 tags (0 subsurface, 1 surface; no tag 2).
    adsorbate : ase.Atoms
        Molecule with ``info["binding_indices"]`` (from
        :func:`~digmat.adsorption.get_adsorbate`); its first binding atom is
        put over ``point``.
    point : array_like, shape (3,)
        Cartesian point, Å; only its in-plane component is used.
    angle : float, default 0
        Rotation about the surface normal, degrees.
    tilt : float, default 0
        Tilt of the molecule's axis away from the normal, degrees.
    tilt_azimuth : float, default 0
        In-plane direction of the tilt axis, degrees from ``a``.
    gap : float, default 0.1
        Clearance beyond the sum of covalent radii, Å.
    relax_surface : bool, default True
        When False, the surface atoms (tag 1) are fixed too.

    Returns
    -------
    ase.Atoms
        Slab atoms (unchanged, same order) followed by the adsorbate (tag 2),
        with FixAtoms on tag 0 (and 1), ``info["binding_indices"]`` (indices
        in the returned system), ``info["adsorbate_indices"]`` and
        ``info["adsorbate"]`` (its name).
    """
    _check_inputs(slab, adsorbate)
    point = np.asarray(point, float).reshape(-1)
    if point.shape != (3,) or not np.all(np.isfinite(point)):
        raise ValueError(f"point must be a finite Cartesian 3-vector, got {point!r}")
    cell = slab.cell.array
    normal = surface_normal(slab)
    slab_pos = _unwrapped_positions(slab)
    # in-plane point, wrapped into the cell, at the slab's top along the normal
    frac = np.linalg.solve(cell.T, point)
    frac[:2] %= 1.0
    base = frac[0] * cell[0] + frac[1] * cell[1]
    base = base + (float((slab_pos @ normal).max()) - float(base @ normal)) * normal
    rel = _oriented(adsorbate, normal, cell, angle, tilt, tilt_azimuth)
    h = _lowest_height(
        slab_pos, covalent_radii[slab.numbers], cell, normal,
        base + rel, covalent_radii[adsorbate.numbers], gap,
    )
    pos = base + rel + h * normal
    # the slab was unwrapped by whole c vectors: bring the binding atom back into the cell along c
    pos -= np.floor(np.linalg.solve(cell.T, base + h * normal)[2]) * cell[2]
    ads = Atoms(adsorbate.numbers, positions=pos)
    ads.set_tags(np.full(len(ads), 2))
    system = slab.copy()
    system.calc = None
    system.set_constraint()
    system.extend(ads)
    n = len(slab)
    tags = system.get_tags()
    fixed = np.flatnonzero((tags == 0) | ((tags == 1) & (not relax_surface)))
    if len(fixed):
        system.set_constraint(FixAtoms(indices=fixed))
    system.info["binding_indices"] = [n + int(i) % len(ads) for i in adsorbate.info["binding_indices"]]
    system.info["adsorbate_indices"] = list(range(n, n + len(ads)))
    system.info["adsorbate"] = str(adsorbate.info.get("name", adsorbate.get_chemical_formula()))
    return system


def surface_sites(
    slab: Atoms, *, symm_reduce: float = 0.01, near_reduce: float = 0.01
) -> list[tuple[str, np.ndarray]]:
    """Symmetry-distinct ontop/bridge/hollow points of pymatgen's AdsorbateSiteFinder.

    The site finder works on the slab's surface atoms (tag 1), so stepped
    surfaces get sites on every exposed row, not only the topmost one.

    Parameters
    ----------
    slab : ase.Atoms
        Bare slab with OC20 tags.
    symm_reduce, near_reduce : float, default 0.01
        pymatgen's symmetry and proximity reduction thresholds (fractional);
        0 keeps all sites.

    Returns
    -------
    list of (str, numpy.ndarray)
        pymatgen's label (``"ontop"``, ``"bridge"``, ``"hollow"``) and the
        Cartesian site point on the surface, shape (3,), Å.
    """
    from pymatgen.analysis.adsorption import AdsorbateSiteFinder
    from pymatgen.io.ase import AseAtomsAdaptor

    work = Atoms(slab.numbers, positions=_unwrapped_positions(slab), cell=slab.cell, pbc=True)
    structure = AseAtomsAdaptor.get_structure(work)
    structure.add_site_property(
        "surface_properties", ["surface" if t == 1 else "subsurface" for t in slab.get_tags()]
    )
    finder = AdsorbateSiteFinder(structure, mi_vec=surface_normal(slab).tolist())
    found = finder.find_adsorption_sites(
        distance=0.0, symm_reduce=symm_reduce, near_reduce=near_reduce,
        positions=("ontop", "bridge", "hollow"),
    )
    return [(kind, np.asarray(p, float)) for kind in ("ontop", "bridge", "hollow") for p in found[kind]]


def heuristic_placements(
    slab: Atoms,
    adsorbate: Atoms,
    *,
    seed: int = 0,
    rotations: int = 1,
    gap: float = DEFAULT_GAP,
    relax_surface: bool = True,
) -> list[Atoms]:
    """The adsorbate on every symmetry-distinct site of :func:`surface_sites`.

    Parameters
    ----------
    slab, adsorbate : ase.Atoms
        As for :func:`place_adsorbate`.
    seed : int, default 0
        Seed of the angles about the normal (drawn uniformly; the first
        rotation of each site has angle 0 when ``rotations > 1``).
    rotations : int, default 1
        Placements per site, at different angles about the normal.
    gap : float, default 0.1
        Clearance beyond the covalent radii, Å.
    relax_surface : bool, default True
        Fix the surface atoms when False.

    Returns
    -------
    list of ase.Atoms
        Placed systems with ``info["placement_origin"] = "heuristic"``,
        ``info["placement_site"]`` (pymatgen's label), ``info["placement_angle"]``.
    """
    _check_inputs(slab, adsorbate)
    if rotations < 1:
        raise ValueError(f"rotations must be >= 1, got {rotations}")
    rng = np.random.default_rng(seed)
    out = []
    for label, point in surface_sites(slab):
        for r in range(rotations):
            angle = 0.0 if (r == 0 and rotations > 1) else float(rng.uniform(0.0, 360.0))
            system = place_adsorbate(slab, adsorbate, point, angle=angle, gap=gap, relax_surface=relax_surface)
            system.info.update(placement_origin="heuristic", placement_site=label,
                               placement_angle=angle, placement_tilt=0.0)
            out.append(system)
    return out


def random_placements(
    slab: Atoms,
    adsorbate: Atoms,
    num: int,
    *,
    seed: int = 0,
    max_tilt: float = 30.0,
    gap: float = DEFAULT_GAP,
    relax_surface: bool = True,
) -> list[Atoms]:
    """``num`` random placements (AdsorbML's random protocol).

    The in-plane point is uniform over the surface cell, the angle about the
    normal uniform in [0°, 360°), and the molecular axis uniform over the
    spherical cap within ``max_tilt`` of the normal.

    Parameters
    ----------
    slab, adsorbate : ase.Atoms
        As for :func:`place_adsorbate`.
    num : int
        Number of placements (≥ 0).
    seed : int, default 0
        Seed of the :class:`numpy.random.Generator`.
    max_tilt : float, default 30
        Largest tilt from the normal, degrees.
    gap : float, default 0.1
        Clearance beyond the covalent radii, Å.
    relax_surface : bool, default True
        Fix the surface atoms when False.

    Returns
    -------
    list of ase.Atoms
        Placed systems with ``info["placement_origin"] = "random"``.
    """
    _check_inputs(slab, adsorbate)
    if num < 0:
        raise ValueError(f"num must be >= 0, got {num}")
    if not 0.0 <= max_tilt <= 180.0:
        raise ValueError(f"max_tilt must be within [0, 180] degrees, got {max_tilt}")
    rng = np.random.default_rng(seed)
    cell = slab.cell.array
    cos_max = math.cos(math.radians(max_tilt))
    out = []
    for _ in range(num):
        u, v = rng.random(2)
        angle = float(rng.uniform(0.0, 360.0))
        tilt = math.degrees(math.acos(rng.uniform(cos_max, 1.0)))
        azimuth = float(rng.uniform(0.0, 360.0))
        system = place_adsorbate(slab, adsorbate, u * cell[0] + v * cell[1], angle=angle, tilt=tilt,
                                 tilt_azimuth=azimuth, gap=gap, relax_surface=relax_surface)
        system.info.update(placement_origin="random", placement_site="random",
                           placement_angle=angle, placement_tilt=tilt)
        out.append(system)
    return out


def make_placements(
    slab: Atoms,
    adsorbate: Atoms,
    *,
    num_random: int = 100,
    heuristic: bool = True,
    seed: int = 0,
    max_tilt: float = 30.0,
    gap: float = DEFAULT_GAP,
    relax_surface: bool = True,
) -> list[Atoms]:
    """Heuristic placements (if ``heuristic``) followed by ``num_random`` random ones.

    Every system gets ``info["placement_index"]`` (its position in the list).
    See :func:`heuristic_placements` and :func:`random_placements`.
    """
    out = []
    if heuristic:
        out += heuristic_placements(slab, adsorbate, seed=seed, gap=gap, relax_surface=relax_surface)
    out += random_placements(slab, adsorbate, num_random, seed=seed + 1, max_tilt=max_tilt,
                             gap=gap, relax_surface=relax_surface)
    for k, system in enumerate(out):
        system.info["placement_index"] = k
    return out
