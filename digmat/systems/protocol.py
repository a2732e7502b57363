"""The one interface every system adapter implements.

An adapter is the only code that knows how a kind of system (an adsorbate on a slab, a
crystal, and the molecule/peptide/ligand adapters to come) maps between ``ase.Atoms`` and the
diffusion state, which space that state lives in, and what a score model is conditioned on.
The diffusion core, the trainer and the samplers see only this interface.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

import torch
from ase import Atoms

from digmat.core import Diffusion, NoiseSchedule, StateSpace

__all__ = ["SystemAdapter"]


@runtime_checkable
class SystemAdapter(Protocol):
    """Atoms ↔ state map, state space and conditioning of one system.

    Attributes
    ----------
    space : digmat.core.StateSpace
        The state space: shape ``(dim,)``, which entries are periodic (torus) and their
        noise scales.
    dim : int
        Number of state entries.
    """

    space: StateSpace
    dim: int

    def to_state(self, configurations: Atoms | Sequence[Atoms], *, dtype: torch.dtype = torch.float64) -> torch.Tensor:
        """States of configurations, shape ``(B, dim)``; inputs are not modified.

        A system with a rigid-body orientation (a ligand in a pocket) returns a
        :class:`~digmat.core.RigidState` whose ``x`` is ``(B, dim)`` on :attr:`space` and whose
        ``R`` holds the orientations; its :meth:`diffusion` is then a
        :class:`~digmat.core.RigidDiffusion` with ``flat.space`` = :attr:`space`."""
        ...

    def to_atoms(self, states: torch.Tensor) -> list[Atoms]:
        """Configurations of states ``(B, dim)``: new ``ase.Atoms`` objects."""
        ...

    def diffusion(self, schedule: NoiseSchedule = NoiseSchedule()) -> Diffusion:
        """The forward diffusion on :attr:`space` under ``schedule``."""
        ...

    def conditioning(self) -> dict[str, Any]:
        """What a score model of this system is conditioned on (JSON-able descriptor)."""
        ...
