"""Is a slab inside what an adsorption model was trained on? Checks made before sampling.

Hard limits (elements, adsorbates, temperatures) are refused by the model itself
(:meth:`~digmat.models.AdsorptionScoreModel.check_domain`). What is left is judged here, before
any network evaluation:

* an adsorbate already on the slab (tag-2 atoms) is refused: the model places its adsorbate on
  a bare slab, and dropping the user's atoms silently would answer a different question;
* a surface whose kind the model never saw is warned about. A surface's kind is its
  *coordination signature*: the sorted distinct neighbour counts of its surface (tag-1) atoms,
  e.g. ``(9,)`` for fcc(111), ``(8,)`` for fcc(100), ``(7, 9, 10)`` for fcc(211) (step,
  terrace and trough atoms). Models record the signatures of their training slabs in
  ``metadata["surface_signatures"]``;
* cells that make the answer unreliable or slow are warned about: fewer than 4 surface atoms
  or an in-plane period under 5 Å (the adsorbate meets its own periodic images), a single
  atomic layer, and more than :data:`LARGE_SLAB` atoms (the network's cost grows with the
  slab; measure with ``-n 8`` first).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable

import numpy as np
from ase import Atoms

from digmat.geometry import CN_CUTOFF_FACTOR, coordination_numbers, nearest_neighbour_distance, slab_heights

__all__ = ["DomainWarning", "LARGE_SLAB", "check_sampling_slab", "surface_signature"]

LARGE_SLAB = 300
"""Slabs with more atoms than this get a cost warning."""


class DomainWarning(UserWarning):
    """The input lies outside what the model was trained on, or is likely to give a poor answer."""


def surface_signature(slab: Atoms) -> tuple[int, ...]:
    """Sorted distinct coordination numbers of a tagged slab's surface (tag-1) atoms.

    Neighbours are counted within ``CN_CUTOFF_FACTOR`` × the median nearest-neighbour
    distance (Å), periodic in-plane; tag-2 (adsorbate) atoms are ignored.
    """
    substrate = slab[slab.get_tags() != 2]
    cn = coordination_numbers(substrate, CN_CUTOFF_FACTOR * nearest_neighbour_distance(substrate))
    return tuple(sorted({int(c) for c in cn[substrate.get_tags() == 1]}))


def check_sampling_slab(slab: Atoms, *, signatures: Iterable[Iterable[int]] | None = None) -> None:
    """Refuse a slab that carries an adsorbate; warn (:class:`DomainWarning`) about the rest.

    Parameters
    ----------
    slab : ase.Atoms
        OC20-tagged slab (0 fixed, 1 surface, 2 adsorbate).
    signatures : iterable of tuples of int, optional
        The model's training surface signatures; ``None`` skips the surface-kind check.

    Raises
    ------
    ValueError
        The slab has tag-2 atoms.
    """
    tags = slab.get_tags()
    if (tags == 2).any():
        idx = np.flatnonzero(tags == 2)
        raise ValueError(f"the slab already carries an adsorbate ({slab[idx].get_chemical_formula()}, atoms {idx[:6].tolist()}"
                         f"{' ...' if len(idx) > 6 else ''}, tag 2): give the bare slab")
    if signatures is not None:
        known = {tuple(int(c) for c in s) for s in signatures}
        own = surface_signature(slab)
        if known and own not in known:
            shown = ", ".join(str(list(s)) for s in sorted(known))
            warnings.warn(f"surface atoms with {list(own)} neighbours: the model was trained only on surfaces with {shown} "
                          "(e.g. a step or facet it never saw); its probabilities there are extrapolated, check them with --refine",
                          DomainWarning, stacklevel=3)
    cell = np.asarray(slab.cell.array, float)
    periods = [float(np.linalg.norm(cell[0])), float(np.linalg.norm(cell[1]))]
    surface = int((tags == 1).sum())
    if surface < 4 or min(periods) < 5.0:
        warnings.warn(f"small surface cell ({surface} surface atoms, in-plane periods {periods[0]:.2f} x {periods[1]:.2f} Å): "
                      "the adsorbate interacts with its own periodic images; repeat the cell (atoms.repeat((3, 3, 1)))",
                      DomainWarning, stacklevel=3)
    heights = slab_heights(slab)
    if np.ptp(heights) < 0.5:
        warnings.warn("the slab is a single atomic layer; the model was trained on slabs of several layers", DomainWarning, stacklevel=3)
    if len(slab) > LARGE_SLAB:
        warnings.warn(f"large slab ({len(slab)} atoms): sampling cost grows with the slab; time -n 8 first, or use a smaller cell",
                      DomainWarning, stacklevel=3)
