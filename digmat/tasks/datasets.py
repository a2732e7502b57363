"""Training items for adsorption models from OC20-format LMDBs (digmat's own or OC20's).

Every record is a slab + adsorbate configuration (OC20 tags 0/1/2). Records are grouped into
systems (same slab and adsorbate) by ``sid`` (or ``info["system"]``); each system becomes an
:class:`~digmat.systems.AdsorbateSystem` and each record its state. The anchor atom is the
record's ``binding_indices[0]`` when present, else the adsorbate atom closest to the surface in
the system's first record.
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Sequence

import numpy as np
import torch
from ase import Atoms

from digmat.systems import AdsorbateStateConfig, AdsorbateSystem

__all__ = ["AdsorptionDataset"]


def _system_key(atoms: Atoms) -> str:
    for key in ("system", "sid"):
        if key in atoms.info:
            return str(atoms.info[key])
    slab = atoms[atoms.get_tags() != 2]
    return f"{slab.get_chemical_formula()}|{atoms[atoms.get_tags() == 2].get_chemical_formula()}|{np.round(slab.cell.array, 3).tobytes().hex()}"


def _anchor(atoms: Atoms) -> int:
    """Index within the adsorbate of its binding atom: ``info["binding_index"]`` (index in the
    structure), ``info["binding_indices"]`` (within the adsorbate), else the lowest atom."""
    ads = np.flatnonzero(atoms.get_tags() == 2)
    if "binding_index" in atoms.info and int(atoms.info["binding_index"]) in ads:
        return int(np.flatnonzero(ads == int(atoms.info["binding_index"]))[0])
    if "binding_indices" in atoms.info:
        return int(list(atoms.info["binding_indices"])[0])
    from digmat.geometry import surface_normal

    return int(np.argmin(atoms.positions[ads] @ surface_normal(atoms)))


class AdsorptionDataset:
    """States of adsorbate-on-slab configurations, grouped by system, ready for the trainer.

    Parameters
    ----------
    source
        An LMDB path (file or folder of shards) or a sequence of ``ase.Atoms``.
    state
        How configurations become states (must match the model's).
    temperature
        Temperature (K) for records without ``info["temperature"]`` (e.g. OC20 itself).

    Items are ``(system_index, state (D,), temperature)``; :meth:`collate` groups a list of
    items into the ``[(system, states, temperatures)]`` form of
    :func:`~digmat.models.adsorption_dsm_loss`.
    """

    def __init__(self, source: str | os.PathLike | Sequence[Atoms], state: AdsorbateStateConfig = AdsorbateStateConfig(), *, temperature: float | None = None):
        if isinstance(source, (str, os.PathLike)):
            from digmat.data.lmdb import LmdbDataset

            with LmdbDataset(source, return_type="dict") as db:
                configs = [db.to_atoms(i) for i in range(len(db))]
            where = f" of {str(source)!r}"
        else:
            configs = list(source)
            where = ""
        if not configs:
            raise ValueError(f"the adsorption dataset{where} is empty")
        groups: dict[str, list[int]] = defaultdict(list)
        for i, atoms in enumerate(configs):
            if not (atoms.get_tags() == 2).any():
                raise ValueError(f"record {i}{where} has no adsorbate atoms (tag 2)")
            groups[_system_key(atoms)].append(i)
        self.systems: list[AdsorbateSystem] = []
        self.keys: list[str] = []
        states, temps, owner = [], [], []
        for key, members in groups.items():
            first = configs[members[0]]
            tags = first.get_tags()
            adsorbate = first[tags == 2]
            system = AdsorbateSystem(first[tags != 2], adsorbate, anchor=_anchor(first), config=state)
            self.systems.append(system)
            self.keys.append(key)
            states.append(system.to_state([configs[i] for i in members], dtype=torch.float32))
            for i in members:
                t = configs[i].info.get("temperature", temperature)
                if t is None:
                    raise ValueError(f"record {i}{where} has no temperature; pass temperature=... (K)")
                temps.append(float(t))
            owner += [len(self.systems) - 1] * len(members)
        self._states = [row for block in states for row in block]
        self._temps = temps
        self._owner = owner
        self._pools: dict[tuple[int, float], torch.Tensor] = {}
        self._index = {id(system): k for k, system in enumerate(self.systems)}
        self.elements = tuple(sorted({s for c in configs for s in c.get_chemical_symbols()}))
        self.adsorbates = tuple(sorted({Atoms(numbers=s.adsorbate_numbers).get_chemical_formula(mode="hill") for s in self.systems}))

    def __len__(self) -> int:
        return len(self._states)

    def __getitem__(self, index: int) -> tuple[int, torch.Tensor, float]:
        return self._owner[index], self._states[index], self._temps[index]

    @property
    def temperature_range(self) -> tuple[float, float]:
        return (min(self._temps), max(self._temps))

    @property
    def groups(self) -> list[int]:
        """The system index of every item (for ``TrainConfig.groups_per_batch``)."""
        return list(self._owner)

    def pool(self, system: AdsorbateSystem, temperature: float) -> torch.Tensor:
        """States (M, D) of every record of ``system`` (one of :attr:`systems`) at ``temperature`` (K).

        The pools of :func:`~digmat.models.adsorption_dsm_loss` (``pools=dataset.pool``).
        """
        index = self._index_of(system)
        key = (index, round(float(temperature), 3))   # collate's float32 temperatures match to ~1e-5 K
        if key not in self._pools:
            rows = [x for owner, x, t in zip(self._owner, self._states, self._temps)
                    if owner == index and abs(t - float(temperature)) <= 1e-4 * max(1.0, t)]
            if not rows:
                raise ValueError(f"no record of system {self.keys[index]} at {temperature} K")
            self._pools[key] = torch.stack(rows)
        return self._pools[key]

    def _index_of(self, system: AdsorbateSystem) -> int:
        index = self._index.get(id(system))
        if index is None:
            raise ValueError("the system is not one of this dataset's systems")
        return index

    def collate(self, items: list[tuple[int, torch.Tensor, float]], device: torch.device | str = "cpu"):
        """Group items by system: ``[(system, states (B_g, D_g), temperatures (B_g,))]``."""
        by_system: dict[int, list[tuple[torch.Tensor, float]]] = defaultdict(list)
        for owner, x, temp in items:
            by_system[owner].append((x, temp))
        return [
            (self.systems[k], torch.stack([x for x, _ in rows]).to(device), torch.tensor([t for _, t in rows], device=device))
            for k, rows in sorted(by_system.items())
        ]
