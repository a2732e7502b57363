"""Anomalies of relaxed adsorbate–slab systems, as AdsorbML defines them.

AdsorbML (Lan et al., npj Comput. Mater. 2023) discards relaxations that end
in one of these states; fairchem's ``DetectTrajAnomaly`` implements them with
connectivity from ASE's ``natural_cutoffs`` (covalent radii) in an ASE
``NeighborList`` with its default ``skin`` of 0.3 Å, which is added to every
atom's cutoff: atoms ``i``, ``j`` are bonded when
``d_ij < mult × (r_i + r_j) + 2 × skin``.  digmat reproduces that criterion
(``skin`` parameter); without the skin an O–H bond of 0.975 Å would not
count as bonded (``r_O + r_H = 0.97`` Å).

``dissociated``
    the adsorbate's bond graph (natural cutoffs × ``bond_mult``, 1.0, plus skin) differs
    between the initial and the relaxed structure — it broke apart or formed
    new internal bonds;
``desorbed``
    no adsorbate atom has a slab neighbour within natural cutoffs ×
    ``desorption_mult`` (1.5);
``surface_changed``
    the slab's bonding changed, by AdsorbML's two-cutoff (hysteresis) test:
    a slab pair bonded at natural cutoffs (× 1.0, plus skin) in one
    structure is not even within the cushioned cutoff (× ``surface_mult``,
    1.5, plus skin) in the other — a bond broke or a new one formed.  A
    bond that only stretches or shrinks between the two cutoffs (3.32 and
    4.68 Å for Au–Au, first shell at 2.88 Å) is a metal relaxing around the
    adsorbate, not a reconstruction.  This is fairchem's
    ``DetectTrajAnomaly.has_surface_changed``.  (digmat before December 2026
    compared the two bond graphs at one cutoff, × 1.0; O in the hollows of
    Au(111) stretches three Au–Au bonds from 2.88 to 3.35–3.42 Å, which
    that test called a surface change, so CHGNet's fcc minimum, 1.33 eV
    below ontop, was discarded.)
``intercalated``
    an adsorbate atom went into the slab: it lies more than
    ``depth_tolerance`` below the lowest surface atom (tag 1), or it is
    bonded (natural cutoffs × ``bond_mult``, plus skin) to a subsurface atom
    (tag 0) while lying below every surface atom it is bonded to.  The second
    condition keeps a 4-fold hollow, where the adsorbate sits above its four
    surface neighbours and within bonding distance of the atom below
    (H on Pd(100): 0.25 Å above the surface, 2.25 Å from the second-layer
    Pd), on the surface; fairchem's bonded-to-subsurface test alone flags it.

Atoms are recognised by OC20 tags (2 adsorbate, 1 surface, 0 subsurface);
periodic images are included everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from ase import Atoms
from ase.neighborlist import natural_cutoffs, neighbor_list

from digmat.geometry import slab_heights

__all__ = ["ANOMALIES", "AnomalyFlags", "bond_changes", "detect_anomalies"]

#: Anomaly names, in reporting order.
ANOMALIES = ("desorbed", "dissociated", "surface_changed", "intercalated")


@dataclass(frozen=True)
class AnomalyFlags:
    """Which anomalies a relaxation shows (see the module docstring).

    Attributes
    ----------
    desorbed, dissociated, surface_changed, intercalated : bool
    """

    desorbed: bool = False
    dissociated: bool = False
    surface_changed: bool = False
    intercalated: bool = False

    @property
    def any(self) -> bool:
        """True when any anomaly is present."""
        return bool(self.names())

    def names(self) -> list[str]:
        """Names of the anomalies present, in :data:`ANOMALIES` order."""
        return [name for name in ANOMALIES if getattr(self, name)]


def _edges(atoms: Atoms, mult: float, skin: float) -> set[tuple[int, int]]:
    """Bonded pairs ``(i, j)``, ``i < j``: ``d < mult (r_i + r_j) + 2 skin`` (periodic)."""
    if len(atoms) < 2:
        return set()
    cutoffs = np.asarray(natural_cutoffs(atoms, mult=mult)) + skin
    i, j = neighbor_list("ij", atoms, cutoffs)
    return {(int(a), int(b)) for a, b in zip(i, j, strict=True) if a < b}


def bond_changes(
    initial: Atoms, relaxed: Atoms, *, surface_mult: float = 1.5, skin: float = 0.3
) -> list[tuple[int, int, str]]:
    """Bonds that broke or formed between two structures of the same atoms (AdsorbML's test).

    A pair ``(i, j)`` *broke* when it is bonded in ``initial`` at natural
    cutoffs (× 1.0, plus ``skin``) and not within the cushioned cutoff
    (× ``surface_mult``, plus ``skin``) in ``relaxed``; it *formed* in the
    opposite case.  Pairs whose distance stays between the two cutoffs count
    as neither.

    Parameters
    ----------
    initial, relaxed : ase.Atoms
        Same atoms in the same order (periodic images are included).
    surface_mult : float, default 1.5
        Cushion multiplier, > 1.
    skin : float, default 0.3
        Added to every atom's cutoff, Å.

    Returns
    -------
    list of (int, int, str)
        ``(i, j, "broke" | "formed")`` with ``i < j``, sorted.
    """
    if not surface_mult > 1.0:
        raise ValueError(f"surface_mult must be > 1 (a cushion above the bonding cutoff), got {surface_mult}")
    broke = _edges(initial, 1.0, skin) - _edges(relaxed, surface_mult, skin)
    formed = _edges(relaxed, 1.0, skin) - _edges(initial, surface_mult, skin)
    return sorted([(i, j, "broke") for i, j in broke] + [(i, j, "formed") for i, j in formed])


def _check_pair(initial: Atoms, relaxed: Atoms) -> np.ndarray:
    for name, atoms in (("initial", initial), ("relaxed", relaxed)):
        if not isinstance(atoms, Atoms):
            raise ValueError(f"{name} must be an ase.Atoms, got {type(atoms).__name__}")
    if len(initial) != len(relaxed) or not np.array_equal(initial.numbers, relaxed.numbers):
        raise ValueError("initial and relaxed structures must hold the same atoms in the same order")
    tags = initial.get_tags()
    if not np.array_equal(tags, relaxed.get_tags()):
        raise ValueError("initial and relaxed structures have different tags")
    if not (tags == 2).any():
        raise ValueError("no adsorbate atoms (tag 2) in the structure")
    if (tags == 2).all():
        raise ValueError("no slab atoms (tags 0/1) in the structure")
    return tags


def detect_anomalies(
    initial: Atoms,
    relaxed: Atoms,
    *,
    bond_mult: float = 1.0,
    desorption_mult: float = 1.5,
    surface_mult: float = 1.5,
    depth_tolerance: float = 0.3,
    skin: float = 0.3,
) -> AnomalyFlags:
    """Flag AdsorbML anomalies of a relaxation.

    Parameters
    ----------
    initial : ase.Atoms
        The placed structure before relaxation (OC20 tags).
    relaxed : ase.Atoms
        The relaxed structure: same atoms, order and tags.
    bond_mult : float, default 1.0
        Multiplier of natural cutoffs for the adsorbate's bonds (dissociation,
        bonds to subsurface atoms).
    desorption_mult : float, default 1.5
        Multiplier of natural cutoffs for adsorbate–slab contacts.
    surface_mult : float, default 1.5
        Cushioned cutoff multiplier of the surface-change test (AdsorbML's
        1.5; see the module docstring).
    depth_tolerance : float, default 0.3
        How far below the lowest surface atom an adsorbate atom may sit, Å.
    skin : float, default 0.3
        Added to every atom's cutoff, Å (ASE ``NeighborList``'s default, as
        in fairchem).

    Returns
    -------
    AnomalyFlags
    """
    tags = _check_pair(initial, relaxed)
    ads = np.flatnonzero(tags == 2)
    slab = np.flatnonzero(tags != 2)

    dissociated = _edges(initial[ads], bond_mult, skin) != _edges(relaxed[ads], bond_mult, skin)
    surface_changed = bool(bond_changes(initial[slab], relaxed[slab], surface_mult=surface_mult, skin=skin))

    contacts = _edges(relaxed, desorption_mult, skin)
    is_ads = tags == 2
    desorbed = not any(is_ads[i] != is_ads[j] for i, j in contacts)

    heights = slab_heights(relaxed)
    lowest_surface = heights[tags == 1].min() if (tags == 1).any() else heights[slab].max()
    buried = bool((heights[ads] < lowest_surface - depth_tolerance).any())
    neighbours: dict[int, set[int]] = {int(a): set() for a in ads}
    for i, j in _edges(relaxed, bond_mult, skin):
        if is_ads[i] != is_ads[j]:
            a, b = (i, j) if is_ads[i] else (j, i)
            neighbours[a].add(b)
    under_surface = any(
        any(tags[b] == 0 for b in nb)
        and all(heights[a] < heights[b] for b in nb if tags[b] == 1)
        for a, nb in neighbours.items()
    )
    return AnomalyFlags(
        desorbed=bool(desorbed),
        dissociated=bool(dissociated),
        surface_changed=bool(surface_changed),
        intercalated=bool(under_surface or buried),
    )
