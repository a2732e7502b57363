"""Adsorbate on a slab <-> diffusion state.

State of one configuration (a vector of D = 3 + 3 (m - 1) [+ 3 k] entries, m adsorbate atoms,
k surface atoms when they relax):

==================  =========================================================  ==========
entries             meaning                                                    topology
==================  =========================================================  ==========
0, 1                fractional in-plane coordinates (u, v) of the anchor atom   torus, L = 1
2                   anchor height above the top surface atom, (h - h0) / s      Euclidean
3 .. 3m - 1         other adsorbate atoms relative to the anchor, Cartesian / s Euclidean
(optional) next 3k  displacements of surface atoms (tag 1) / s_surf              Euclidean
==================  =========================================================  ==========

with s = ``length_scale`` (Å). The anchor's in-plane position lives on the torus of the surface
cell, so every site of the cell is reachable and a lattice-translated input maps to the same
state. The periodic noise scale is s/|a| and s/|b| so that the in-plane noise in Å follows the
same clock as the Euclidean entries, whatever the cell size.

Geometry: the surface normal is n = a x b / |a x b| (oriented along +c); a point is
r = u a + v b + z n. The slab is first shifted along c so that it is contiguous and its top
surface atom sits at height ``z_top``; heights are measured from there.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from ase import Atoms
from ase.constraints import FixAtoms
from ase.geometry import find_mic

from digmat.core import Diffusion, NoiseSchedule, StateSpace

__all__ = ["AdsorbateStateConfig", "AdsorbateSystem", "ANCHOR_TAG"]

ANCHOR_TAG = 3
"""Role given to the anchor atom in the network input (OC20 tags 0/1/2 plus this one)."""


@dataclass(frozen=True)
class AdsorbateStateConfig:
    """How configurations are expressed as states.

    Parameters
    ----------
    length_scale
        s, the unit of Euclidean entries, Å.
    height_offset
        h0: state 0 of the height entry is this far above the top surface atom, Å.
    relax_surface
        Include the surface atoms (tag 1) as small displacements.
    surface_scale
        Unit of surface-atom displacements, Å.
    """

    length_scale: float = 1.0
    height_offset: float = 1.5
    relax_surface: bool = False
    surface_scale: float = 0.1

    def __post_init__(self) -> None:
        if self.length_scale <= 0 or self.surface_scale <= 0:
            raise ValueError("length_scale and surface_scale must be > 0")


class AdsorbateSystem:
    """One slab and one adsorbate species list, and the map between their Atoms and states.

    Parameters
    ----------
    slab
        Tagged slab (OC20 tags: 0 subsurface, 1 surface); adsorbate atoms (tag 2), if present,
        are removed. Validated with :func:`digmat.adsorption.validate_slab`.
    adsorbate
        The adsorbate (``ase.Atoms``; positions only define the species order and a default
        geometry). ``info["binding_indices"]`` selects the anchor unless ``anchor`` is given.
    anchor
        Index (within the adsorbate) of the atom whose in-plane position lives on the torus.
    config
        :class:`AdsorbateStateConfig`.
    """

    def __init__(self, slab: Atoms, adsorbate: Atoms, *, anchor: int | None = None, config: AdsorbateStateConfig = AdsorbateStateConfig()):
        from digmat.adsorption import validate_slab
        from digmat.geometry import surface_normal, vacuum_gap

        if not isinstance(adsorbate, Atoms) or len(adsorbate) == 0:
            raise ValueError("the adsorbate must be a non-empty ase.Atoms")
        tags = slab.get_tags()
        substrate = slab[tags != 2]
        validate_slab(substrate)
        sub_tags = substrate.get_tags()
        if not (sub_tags == 1).any():
            raise ValueError("the slab has no surface atoms (tag 1); tag it first with digmat.adsorption.infer_tags")
        if anchor is None:
            anchor = int(adsorbate.info.get("binding_indices", [0])[0])
        if not 0 <= anchor < len(adsorbate):
            raise ValueError(f"anchor index {anchor} is outside the adsorbate's {len(adsorbate)} atoms")
        self.config = config
        self.anchor = anchor
        self.adsorbate_numbers = adsorbate.numbers.copy()
        self.adsorbate_symbols = adsorbate.get_chemical_formula()
        # canonical slab: contiguous along c, vacuum above
        slab_c = substrate.copy()
        slab_c.set_constraint()
        gap = vacuum_gap(slab_c)
        scaled = slab_c.get_scaled_positions(wrap=False)
        scaled[:, 2] = np.mod(scaled[:, 2] - gap.bottom + 0.5 * gap.gap, 1.0) - 0.5 * gap.gap + 0.05
        scaled[:, :2] = np.mod(scaled[:, :2], 1.0)
        slab_c.set_scaled_positions(scaled)
        self.slab = slab_c
        cell = np.asarray(slab_c.cell.array, float)
        self.normal = surface_normal(slab_c)
        self.frame = np.stack([cell[0], cell[1], self.normal])  # rows: a, b, n
        self.frame_inv = np.linalg.inv(self.frame)
        heights = slab_c.positions @ self.normal
        self.surface_index = np.flatnonzero(sub_tags == 1)
        self.z_top = float(heights[self.surface_index].max())
        self.num_adsorbate = len(adsorbate)
        n_surf = len(self.surface_index) if config.relax_surface else 0
        self.dim = 3 + 3 * (self.num_adsorbate - 1) + 3 * n_surf
        lengths = np.linalg.norm(cell[:2], axis=1)
        period = torch.zeros(self.dim, dtype=torch.float64)
        period[:2] = 1.0
        scale = torch.ones(self.dim, dtype=torch.float64)
        scale[:2] = torch.tensor(config.length_scale / lengths)
        self.space = StateSpace((self.dim,), period=period, noise_scale=scale)
        order = [anchor] + [i for i in range(self.num_adsorbate) if i != anchor]
        self.state_order = np.array(order)
        """Adsorbate index of each atom in state order (anchor first)."""
        self._from_state_order = torch.as_tensor(np.argsort(self.state_order))
        self.tags = np.concatenate([sub_tags, np.full(self.num_adsorbate, 2)])
        self.network_tags = self.tags.copy()
        self.network_tags[len(slab_c) + anchor] = ANCHOR_TAG

    # ------------------------------------------------------------------ basics
    def __repr__(self) -> str:
        return f"AdsorbateSystem({self.adsorbate_symbols} on {self.slab.get_chemical_formula()}, state dim {self.dim})"

    @property
    def num_slab(self) -> int:
        return len(self.slab)

    def conditioning(self) -> dict:
        """The descriptor a score model is conditioned on: the slab's and the adsorbate's atoms
        (the temperature, K, is passed to the model with each call)."""
        return {"kind": "adsorption", "slab": self.slab.get_chemical_formula(), "adsorbate": self.adsorbate_symbols,
                "slab_atoms": int(self.num_slab), "adsorbate_atoms": int(self.num_adsorbate)}

    def diffusion(self, schedule: NoiseSchedule = NoiseSchedule()) -> Diffusion:
        """The forward process on this system's state space."""
        return Diffusion(self.space, schedule)

    # ------------------------------------------------------------------ states -> positions
    def positions(self, states: torch.Tensor) -> torch.Tensor:
        """Cartesian positions (B, N_slab + m, 3) in Å of states (B, D); differentiable."""
        self.space.check(states, "states")
        frame = torch.as_tensor(self.frame, dtype=states.dtype, device=states.device)
        b = states.shape[0]
        s = self.config.length_scale
        height = self.z_top + self.config.height_offset + s * states[:, 2]
        coeff = torch.stack([states[:, 0], states[:, 1], height], dim=1)
        anchor = coeff @ frame  # (B, 3)
        rel = s * states[:, 3 : 3 * self.num_adsorbate].reshape(b, self.num_adsorbate - 1, 3)
        ads_state_order = torch.cat([anchor[:, None], anchor[:, None] + rel], dim=1)
        ads = ads_state_order[:, self._from_state_order.to(states.device)]
        slab = torch.as_tensor(self.slab.positions, dtype=states.dtype, device=states.device).expand(b, -1, -1)
        if self.config.relax_surface:
            start = 3 * self.num_adsorbate
            disp = self.config.surface_scale * states[:, start:].reshape(b, -1, 3)
            idx = torch.as_tensor(self.surface_index, device=states.device)
            slab = slab.index_add(1, idx, disp)
        return torch.cat([slab, ads], dim=1)

    def to_atoms(self, states: torch.Tensor) -> list[Atoms]:
        """Configurations (slab + adsorbate, OC20 tags, subsurface fixed) for states (B, D)."""
        pos = self.positions(states.detach()).cpu().double().numpy()
        numbers = np.concatenate([self.slab.numbers, self.adsorbate_numbers])
        out = []
        for p in pos:
            atoms = Atoms(numbers=numbers, positions=p, cell=self.slab.cell, pbc=self.slab.pbc, tags=self.tags)
            atoms.set_constraint(FixAtoms(indices=np.flatnonzero(self.tags == 0)))
            out.append(atoms)
        return out

    # ------------------------------------------------------------------ atoms -> states
    def to_state(self, configurations: Atoms | list[Atoms], *, dtype: torch.dtype = torch.float64) -> torch.Tensor:
        """States (B, D) of configurations that contain this slab and the adsorbate (tag 2).

        The adsorbate's atoms must be the last m atoms or be tagged 2 in the adsorbate's order;
        lattice translations of the adsorbate give the same state.
        """
        if isinstance(configurations, Atoms):
            configurations = [configurations]
        rows = [self._state_of(atoms) for atoms in configurations]
        return torch.tensor(np.stack(rows), dtype=dtype)

    def _state_of(self, atoms: Atoms) -> np.ndarray:
        tags = atoms.get_tags()
        ads_idx = np.flatnonzero(tags == 2)
        if len(ads_idx) != self.num_adsorbate:
            ads_idx = np.arange(len(atoms) - self.num_adsorbate, len(atoms))
        if not np.array_equal(atoms.numbers[ads_idx], self.adsorbate_numbers):
            raise ValueError(
                f"the configuration's adsorbate {atoms[ads_idx].get_chemical_formula()} does not match this system's {self.adsorbate_symbols}"
            )
        if len(atoms) - len(ads_idx) != self.num_slab:
            raise ValueError(f"the configuration has {len(atoms) - len(ads_idx)} slab atoms, this system {self.num_slab}")
        pos = atoms.positions[ads_idx]
        rel, _ = find_mic(pos - pos[self.anchor], self.slab.cell, pbc=[True, True, False])
        # the configuration's slab may sit translated relative to the canonical copy (e.g. not
        # shifted along c): measure that offset on the fixed atoms and remove it
        sub = np.setdiff1d(np.arange(len(atoms)), ads_idx)
        ref = np.flatnonzero(self.tags[: self.num_slab] == 0)
        if len(ref) == 0:
            ref = np.arange(self.num_slab)
        d, _ = find_mic(atoms.positions[sub][ref] - self.slab.positions[ref], self.slab.cell, pbc=True)
        d_aligned = d[0] + find_mic(d - d[0], self.slab.cell, pbc=True)[0]
        offset = d_aligned.mean(0)
        coeff = (pos[self.anchor] - offset) @ self.frame_inv
        s = self.config.length_scale
        row = [coeff[0] % 1.0, coeff[1] % 1.0, (coeff[2] - self.z_top - self.config.height_offset) / s]
        row += list((rel[self.state_order[1:]] / s).ravel())
        if self.config.relax_surface:
            surf = self.surface_index
            disp, _ = find_mic(atoms.positions[sub][surf] - offset - self.slab.positions[surf], self.slab.cell, pbc=True)
            row += list((disp / self.config.surface_scale).ravel())
        return np.asarray(row, dtype=np.float64)
