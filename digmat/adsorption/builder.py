"""Build OC20-style slabs from bulks with pymatgen's SlabGenerator.

Bulk specifications accepted by :func:`build_slab` (and :func:`make_bulk`):

* an :class:`ase.Atoms` or :class:`pymatgen.core.Structure` bulk (3D
  periodic); it is standardised to its conventional cell, so Miller indices
  refer to the conventional cell as usual;
* an element symbol, ``"Pt"``: ``ase.build.bulk`` with ASE's reference
  lattice constant and structure (fcc, bcc, hcp, diamond ...);
* an ordered binary alloy, ``"Pt3Ni"`` (L1₂), ``"PtNi"`` (L1₀ when the
  parent lattice is fcc, B2 when both elements are bcc), or explicitly
  ``"FeAl:B2"``, ``"CuAu:L10"``, ``"Cu3Au:L12"``.  Lattice constants follow
  Vegard's law on the elements' reference nearest-neighbour distances; L1₀
  is built with the ideal c/a = 1 of its fcc parent;
* a random substitutional alloy, ``"Pt0.75Ni0.25"`` or ``"Pt3Ni:random"``:
  the majority element's lattice (Vegard-scaled) with the given fraction of
  the slab's atoms replaced at random (``seed``).

Units: Å throughout.
"""

from __future__ import annotations

import difflib
import math
import re
from dataclasses import dataclass

import numpy as np
from ase import Atoms
from ase.build import bulk as ase_bulk
from ase.data import atomic_numbers, chemical_symbols, reference_states

from digmat.geometry import (
    CN_CUTOFF_FACTOR,
    coordination_numbers,
    nearest_neighbour_distance,
    slab_heights,
    spglib_symmetry,
    surface_mask,
    surface_normal,
    vacuum_gap,
    with_fixed_subsurface,
)

__all__ = ["BulkSpec", "build_slab", "make_bulk", "parse_bulk_spec"]

_STRUCTURES = {"l12": "L12", "l10": "L10", "b2": "B2", "random": "random"}
_SPEC_RE = re.compile(
    r"^([A-Z][a-z]?)(\d+(?:\.\d*)?|\.\d+)?"
    r"(?:([A-Z][a-z]?)(\d+(?:\.\d*)?|\.\d+)?)?"
    r"(?::([A-Za-z0-9]+))?$"
)


@dataclass(frozen=True)
class BulkSpec:
    """Parsed bulk specification.

    Attributes
    ----------
    elements : tuple of str
        One or two element symbols; for alloys the host (majority) first.
    amounts : tuple of float
        Relative amounts (``(3, 1)`` for Pt3Ni).
    structure : str
        ``"element"``, ``"L12"``, ``"L10"``, ``"B2"`` or ``"random"``.
    """

    elements: tuple[str, ...]
    amounts: tuple[float, ...]
    structure: str

    @property
    def fraction(self) -> float:
        """Atomic fraction of the second (minority) element."""
        return self.amounts[1] / sum(self.amounts) if len(self.amounts) == 2 else 0.0


def _check_symbol(symbol: str, spec: str) -> str:
    if symbol in atomic_numbers and symbol != "X":
        return symbol
    close = difflib.get_close_matches(symbol, chemical_symbols[1:], n=3)
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    raise ValueError(f"unknown element {symbol!r} in bulk spec {spec!r}.{hint}")


def parse_bulk_spec(spec: str) -> BulkSpec:
    """Parse ``"Pt"``, ``"Pt3Ni"``, ``"PtNi:L10"``, ``"Pt0.75Ni0.25"`` ...

    Parameters
    ----------
    spec : str

    Returns
    -------
    BulkSpec
    """
    m = _SPEC_RE.match(spec.strip()) if isinstance(spec, str) else None
    if m is None:
        raise ValueError(
            f"cannot parse bulk spec {spec!r}; use an element ('Pt'), an ordered alloy "
            "('Pt3Ni', 'PtNi', 'FeAl:B2') or a random alloy ('Pt0.75Ni0.25', 'Pt3Ni:random')"
        )
    el1, n1, el2, n2, struct = m.groups()
    el1 = _check_symbol(el1, spec)
    amount1 = float(n1) if n1 else 1.0
    if struct is not None and struct.lower() not in _STRUCTURES:
        raise ValueError(
            f"unknown alloy structure {struct!r} in {spec!r}; choose from "
            f"{', '.join(sorted(set(_STRUCTURES.values())))}"
        )
    struct = _STRUCTURES[struct.lower()] if struct else None
    if el2 is None:
        if struct is not None or n1:
            raise ValueError(f"{spec!r}: a single element takes no amount or structure")
        return BulkSpec((el1,), (1.0,), "element")
    el2 = _check_symbol(el2, spec)
    amount2 = float(n2) if n2 else 1.0
    if el1 == el2:
        raise ValueError(f"{spec!r}: the two alloy elements must differ")
    if amount1 <= 0 or amount2 <= 0:
        raise ValueError(f"{spec!r}: amounts must be positive")
    if amount2 > amount1:  # host (majority) first
        el1, el2, amount1, amount2 = el2, el1, amount2, amount1
    ratio = amount1 / amount2
    integral = float(amount1).is_integer() and float(amount2).is_integer()
    if struct is None:
        if integral and math.isclose(ratio, 3.0):
            struct = "L12"
        elif integral and math.isclose(ratio, 1.0):
            both_bcc = all(_symmetry(e) == "bcc" for e in (el1, el2))
            struct = "B2" if both_bcc else "L10"
        else:
            struct = "random"
    expected = {"L12": 3.0, "L10": 1.0, "B2": 1.0}
    if struct in expected and not math.isclose(ratio, expected[struct]):
        raise ValueError(f"{spec!r}: {struct} needs a {expected[struct]:g}:1 composition")
    return BulkSpec((el1, el2), (amount1, amount2), struct)


def _symmetry(symbol: str) -> str:
    ref = reference_states[atomic_numbers[symbol]]
    return ref["symmetry"] if ref else "none"


def _nn_distance(symbol: str) -> float:
    """Nearest-neighbour distance of the element's ASE reference crystal, Å."""
    ref = reference_states[atomic_numbers[symbol]]
    sym = ref["symmetry"] if ref else None
    if sym == "fcc":
        return ref["a"] / math.sqrt(2.0)
    if sym == "bcc":
        return ref["a"] * math.sqrt(3.0) / 2.0
    if sym == "hcp":
        return ref["a"]
    raise ValueError(
        f"{symbol} has no fcc/bcc/hcp reference crystal in ASE (it is {sym!r}); "
        "build its bulk yourself and pass the ase.Atoms to build_slab"
    )


def make_bulk(spec: str) -> tuple[Atoms, BulkSpec]:
    """Conventional bulk cell for a bulk spec string.

    For random alloys this is the Vegard-scaled host crystal; the
    substitution happens on the slab (see :func:`build_slab`).

    Parameters
    ----------
    spec : str
        See the module docstring.

    Returns
    -------
    (ase.Atoms, BulkSpec)
    """
    parsed = parse_bulk_spec(spec)
    if parsed.structure == "element":
        el = parsed.elements[0]
        try:
            try:
                return ase_bulk(el, cubic=True), parsed
            except (ValueError, RuntimeError):
                return ase_bulk(el), parsed
        except Exception as exc:
            raise ValueError(
                f"ASE has no reference crystal for {el} ({exc}); pass a bulk ase.Atoms"
            ) from exc
    (host, sol), (x_host, x_sol) = parsed.elements, parsed.amounts
    d_mean = (x_host * _nn_distance(host) + x_sol * _nn_distance(sol)) / (x_host + x_sol)
    if parsed.structure == "random":
        sym = _symmetry(host)
        scale = d_mean / _nn_distance(host)
        ref = reference_states[atomic_numbers[host]]
        if sym == "hcp":
            a = ref["a"] * scale
            return ase_bulk(host, "hcp", a=a, c=a * ref["c/a"]), parsed
        return ase_bulk(host, sym, a=ref["a"] * scale, cubic=True), parsed
    if parsed.structure == "B2":
        atoms = ase_bulk(host, "bcc", a=d_mean * 2.0 / math.sqrt(3.0), cubic=True)
        atoms.numbers[1] = atomic_numbers[sol]
        return atoms, parsed
    atoms = ase_bulk(host, "fcc", a=d_mean * math.sqrt(2.0), cubic=True)
    frac = atoms.get_scaled_positions()
    if parsed.structure == "L12":  # minority on the cube corner
        corner = np.flatnonzero(np.all(np.isclose(frac, 0.0), axis=1))
        atoms.numbers[corner] = atomic_numbers[sol]
    else:  # L10: alternate (001) planes
        atoms.numbers[np.isclose(frac[:, 2], 0.5)] = atomic_numbers[sol]
    return atoms, parsed


def _normalise_miller(miller) -> tuple[int, int, int]:
    try:
        m = [int(x) for x in miller]
        ok = all(float(x) == int(x) for x in miller)
    except (TypeError, ValueError):
        ok = False
    if not ok or len(m) not in (3, 4):
        raise ValueError(f"miller must be 3 integers (or 4 Miller-Bravais), got {miller!r}")
    if len(m) == 4:
        if m[2] != -(m[0] + m[1]):
            raise ValueError(f"Miller-Bravais index {tuple(m)} needs i = -(h + k)")
        m = [m[0], m[1], m[3]]
    if not any(m):
        raise ValueError("miller index (0, 0, 0) does not define a plane")
    return tuple(m)


def _reduce_2d(a: np.ndarray, b: np.ndarray, normal: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Lagrange-Gauss reduction of the in-plane lattice, right-handed about ``normal``."""
    u, v = a.copy(), b.copy()
    if np.linalg.norm(u) > np.linalg.norm(v):
        u, v = v, u
    for _ in range(100):
        v = v - round(np.dot(u, v) / np.dot(u, u)) * u
        if np.linalg.norm(v) < np.linalg.norm(u) - 1e-9:
            u, v = v, u
        else:
            break
    if np.dot(np.cross(u, v), normal) < 0:
        v = -v
    return u, v


def _orient(numbers, positions, cell, vacuum: float) -> Atoms:
    """Slab with a along x, the surface normal along z and c = (0, 0, thickness + vacuum)."""
    tmp = Atoms(numbers=numbers, positions=positions, cell=cell, pbc=True)
    n = surface_normal(tmp)
    gap = vacuum_gap(tmp)
    heights = slab_heights(tmp)
    # Unwrap along c so the slab is contiguous, then project in-plane.
    frac = np.linalg.solve(tmp.cell.array.T, tmp.positions.T).T
    frac[:, 2] = gap.bottom + heights / gap.spacing
    unwrapped = frac @ tmp.cell.array
    u, v = _reduce_2d(tmp.cell[0], tmp.cell[1], n)
    x = u / np.linalg.norm(u)
    rot = np.array([x, np.cross(n, x), n])
    pos = (unwrapped - np.outer(unwrapped @ n, n)) @ rot.T
    pos[:, 2] = heights + 0.5 * vacuum
    new_cell = np.array([rot @ u, rot @ v, [0.0, 0.0, heights.max() + vacuum]])
    new_cell[:2, 2] = 0.0
    out = Atoms(numbers=numbers, positions=pos, cell=new_cell, pbc=True)
    out.wrap()
    return out


def _flip(slab: Atoms) -> Atoms:
    """The slab upside down (180° about x), still right-handed with c along +z."""
    out = slab.copy()
    z = out.positions[:, 2]
    out.positions[:, 1] *= -1.0
    out.positions[:, 2] = z.max() + z.min() - z
    cell = out.cell.array.copy()
    cell[1] = [-cell[1, 0], cell[1, 1], 0.0]  # -(b rotated): keeps det > 0
    out.set_cell(cell)
    out.wrap()
    return out


def _invertible(slab: Atoms, symprec: float = 0.1) -> bool:
    """True if a symmetry operation maps the top side onto the bottom side."""
    data = spglib_symmetry(slab.cell.array, slab.get_scaled_positions(), slab.numbers, symprec)
    if data is None:
        return False
    return any(r[2, 2] == -1 for r in data["rotations"])


def _terminations(generator) -> list[tuple[Atoms, float, bool]]:
    """Distinct top terminations: pymatgen's slabs, plus their flips when the
    bottom differs from the top (as OC20 does)."""
    out = []
    for s in generator.get_slabs(tol=0.3, symmetrize=False):
        slab = _orient(s.atomic_numbers, s.cart_coords, s.lattice.matrix, generator.min_vac_size)
        out.append((slab, float(s.shift), False))
        if not _invertible(slab):
            out.append((_flip(slab), float(s.shift), True))
    return out


def _shortest_vector(u: np.ndarray, v: np.ndarray) -> float:
    """Length of the shortest non-zero vector of the 2D lattice spanned by u, v."""
    a, b = _reduce_2d(u, v, np.cross(u, v))
    return float(min(np.linalg.norm(a), np.linalg.norm(b)))


def _tiling(cell: np.ndarray, min_lateral: float) -> tuple[int, int]:
    """Smallest-area repeat (na, nb) whose every in-plane lattice vector is >= min_lateral."""
    a, b = cell[0], cell[1]
    limit = math.ceil(min_lateral / min(np.linalg.norm(a), np.linalg.norm(b))) + 2
    best = None
    for na in range(1, limit + 1):
        for nb in range(1, limit + 1):
            if _shortest_vector(na * a, nb * b) >= min_lateral - 1e-9:
                key = (na * nb, abs(na * np.linalg.norm(a) - nb * np.linalg.norm(b)))
                if best is None or key < best[0]:
                    best = (key, (na, nb))
    # For the reduced cell, na = nb = limit always qualifies; keep a safe fallback.
    return best[1] if best is not None else (limit, limit)


def _trim_bottom(slab: Atoms, min_slab: float, vacuum: float, tol: float = 0.1) -> Atoms:
    """Remove bottom atomic planes while the slab stays >= min_slab thick; recentre."""
    z = slab.positions[:, 2]
    zs = np.sort(z)
    starts = zs[np.concatenate([[True], np.diff(zs) > tol])]  # lowest z of each plane
    top = zs[-1]
    allowed = starts[top - starts >= min_slab - 1e-6]
    keep_from = allowed.max() if len(allowed) else starts[0]
    out = slab[z >= keep_from - 1e-6]
    out.positions[:, 2] += 0.5 * vacuum - keep_from
    cell = out.cell.array.copy()
    cell[2] = [0.0, 0.0, top - keep_from + vacuum]
    out.set_cell(cell)
    return out


def _as_bulk(bulk) -> tuple[Atoms, BulkSpec | None, bool]:
    """(bulk atoms, parsed spec or None, whether to standardise)."""
    if isinstance(bulk, str):
        atoms, spec = make_bulk(bulk)
        return atoms, spec, False
    try:
        from pymatgen.core import Structure
        from pymatgen.io.ase import AseAtomsAdaptor

        if isinstance(bulk, Structure):
            bulk = AseAtomsAdaptor.get_atoms(bulk)
    except ImportError:  # pragma: no cover - pymatgen is a core dependency
        pass
    if not isinstance(bulk, Atoms):
        raise ValueError(
            f"bulk must be an ase.Atoms, a pymatgen Structure or a spec string, "
            f"got {type(bulk).__name__}"
        )
    if len(bulk) == 0 or not bulk.pbc.all() or abs(bulk.cell.volume) < 1e-6:
        raise ValueError("bulk must be a 3D-periodic crystal (pbc all True, non-zero cell)")
    return bulk, None, True


def build_slab(
    bulk: Atoms | str,
    miller: tuple[int, ...] = (1, 1, 1),
    *,
    min_slab: float = 7.0,
    min_vacuum: float = 10.0,
    min_lateral: float = 8.0,
    termination: int = 0,
    seed: int = 0,
    trim_layers: bool = True,
) -> Atoms:
    """Cut, orient, tile, tag and constrain an OC20-style slab.

    Parameters
    ----------
    bulk : ase.Atoms, pymatgen Structure or str
        The bulk crystal or a spec string (module docstring).
    miller : tuple of int, default (1, 1, 1)
        Miller indices in the conventional cell (4 Miller-Bravais indices
        are accepted for hexagonal crystals).
    min_slab : float, default 7.0
        Minimum slab thickness, lowest to highest atom along the normal, Å.
    min_vacuum : float, default 10.0
        Vacuum between the slab and its periodic image along ``c``, Å.
    min_lateral : float, default 8.0
        Minimum length of every in-plane lattice vector of the tiled cell, Å
        (periodic images of an adsorbate are at least this far apart).
    termination : int, default 0
        Which distinct top termination to use: pymatgen's slabs (one per
        shift), each followed by its upside-down copy when its bottom differs
        from its top (as OC20 enumerates them).
    seed : int, default 0
        Random-number seed for random alloys.
    trim_layers : bool, default True
        pymatgen stacks whole oriented unit cells (six layers for fcc(111),
        as in OC20); remove bottom atomic planes while the slab stays at least
        ``min_slab`` thick.  Set False for pymatgen's (OC20's) layer count.

    Returns
    -------
    ase.Atoms
        Slab with ``a`` along x, the surface normal and ``c`` along z, the
        vacuum along ``c``, OC20 tags (1 surface, 0 subsurface), FixAtoms on
        tag 0 and ``info`` keys ``miller``, ``termination``,
        ``n_terminations``, ``shift``, ``flipped``, ``bulk`` and (alloys) ``alloy``,
        ``alloy_fraction``, ``seed``.
    """
    from pymatgen.core.surface import SlabGenerator
    from pymatgen.io.ase import AseAtomsAdaptor
    from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

    hkl = _normalise_miller(miller)
    for name, value in (("min_slab", min_slab), ("min_vacuum", min_vacuum), ("min_lateral", min_lateral)):
        if not (np.isfinite(value) and value > 0):
            raise ValueError(f"{name} must be a positive length in Å, got {value!r}")
    bulk_atoms, spec, standardise = _as_bulk(bulk)
    structure = AseAtomsAdaptor.get_structure(bulk_atoms)
    if standardise:
        structure = SpacegroupAnalyzer(structure, symprec=0.1).get_conventional_standard_structure()
        bulk_atoms = AseAtomsAdaptor.get_atoms(structure)
    d_hkl = structure.lattice.d_hkl(hkl)
    size = min_slab
    for _ in range(20):
        gen = SlabGenerator(
            structure, hkl, min_slab_size=size, min_vacuum_size=min_vacuum,
            lll_reduce=False, center_slab=True, primitive=True, max_normal_search=1,
        )
        options = _terminations(gen)
        if not options:
            raise ValueError(f"pymatgen found no slab for miller {hkl}")
        if not 0 <= termination < len(options):
            raise ValueError(
                f"termination={termination} out of range: miller {hkl} has {len(options)} "
                f"distinct termination(s); use 0..{len(options) - 1}"
            )
        slab, shift, flipped = options[termination]
        if np.ptp(slab.positions[:, 2]) >= min_slab - 1e-6:
            break
        size += d_hkl
    if trim_layers:
        slab = _trim_bottom(slab, min_slab, min_vacuum)
    slab = slab.repeat((*_tiling(slab.cell.array, min_lateral), 1))

    cutoff = CN_CUTOFF_FACTOR * nearest_neighbour_distance(bulk_atoms)
    bulk_cn = coordination_numbers(bulk_atoms, cutoff)
    reference = {}
    for el, cn in zip(bulk_atoms.get_chemical_symbols(), bulk_cn, strict=True):
        reference[el] = min(reference.get(el, cn), int(cn))
    surface = surface_mask(slab, slab_heights(slab), cutoff=cutoff, reference_cn=reference)
    slab.set_tags(np.where(surface, 1, 0))

    slab.info.update(
        miller=hkl, termination=termination, n_terminations=len(options),
        shift=shift, flipped=flipped,
        bulk=bulk if isinstance(bulk, str) else bulk_atoms.get_chemical_formula(),
    )
    if spec is not None and spec.structure != "element":
        slab.info.update(alloy=spec.structure, alloy_fraction=spec.fraction)
        if spec.structure == "random":
            rng = np.random.default_rng(seed)
            n_sub = int(round(spec.fraction * len(slab)))
            picked = rng.choice(len(slab), size=n_sub, replace=False)
            numbers = slab.numbers.copy()
            numbers[picked] = atomic_numbers[spec.elements[1]]
            slab.numbers = numbers
            slab.info.update(alloy_fraction=n_sub / len(slab), seed=seed)
    return with_fixed_subsurface(slab)
