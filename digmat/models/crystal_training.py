"""Training data and the training loss of the crystal score model, and its denoising profile.

:class:`CrystalDataset` turns ``ase.Atoms`` crystals into canonical states grouped by
composition, :func:`collate_crystals` batches them per composition, :func:`crystal_dsm_loss` is the
denoising score-matching loss the shared :class:`digmat.train.Trainer` minimises, and
:func:`crystal_denoising_profile` measures a trained model's noise-prediction error per noise level.
The model itself is in :mod:`digmat.models.crystal`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor, nn

from digmat.core import denoising_profile, noise_batch, score_matching_error
from digmat.systems.crystal import CrystalStateConfig, CrystalSystem

from .crystal import CrystalScoreModel

__all__ = ["CrystalDataset", "collate_crystals", "crystal_denoising_profile", "crystal_dsm_loss"]


def crystal_dsm_loss(model: nn.Module, groups: Sequence[tuple[CrystalSystem, Tensor]], generator: torch.Generator, *,
                     t_range: tuple[float, float] | None = None) -> Tensor:
    """Denoising score matching (eps form) over a batch of crystals of several sizes, one pass.

    Per sample: mean squared eps error over the fractional coordinates plus ``lattice_weight``
    times that over the six lattice entries; the loss is the mean over samples.

    Parameters
    ----------
    model
        A :class:`CrystalScoreModel` (or a DDP wrapper of one).
    groups
        ``(system, clean states (B_g, D_g))`` per system.
    t_range
        ``(lo, hi)``: draw the diffusion times uniformly on [lo, hi] instead of the model's
        ``time_power`` schedule (fine-tuning or diagnosing one band of noise levels).
    """
    core = model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model
    schedule = core.config.schedule

    def times(x0: Tensor) -> Tensor | None:
        if t_range is None:
            return None
        lo, hi = t_range
        return lo + (hi - lo) * torch.rand(x0.shape[0], generator=generator, dtype=x0.dtype).to(x0.device)

    noised = [noise_batch(system.diffusion(schedule), x0, t=times(x0), time_power=core.config.time_power, generator=generator) for system, x0 in groups]
    eps = model([(system, nb.xt, nb.t) for (system, _), nb in zip(groups, noised)])
    errors = []
    for (system, x0), nb, e in zip(groups, noised, eps):
        frac_mask = torch.zeros(system.dim, dtype=x0.dtype, device=x0.device)
        frac_mask[: 3 * system.num_atoms] = 1.0
        score = -e / nb.std
        frac = score_matching_error(nb, score, mask=frac_mask)
        lat = score_matching_error(nb, score, mask=1.0 - frac_mask)
        errors.append(frac + core.config.lattice_weight * lat)
    return torch.cat(errors).mean()


class CrystalDataset:
    """Canonical states of a list of crystals, grouped by composition.

    Parameters
    ----------
    structures
        3D-periodic crystals.
    state
        The state convention (e.g. ``CrystalStateConfig.fit(structures)``).
    """

    def __init__(self, structures: Sequence, state: CrystalStateConfig):
        self.state = state
        self.systems: dict[tuple[int, ...], CrystalSystem] = {}
        self.items: list[tuple[tuple[int, ...], Tensor]] = []
        for atoms in structures:
            key = tuple(int(z) for z in np.sort(atoms.numbers))
            system = self.systems.setdefault(key, CrystalSystem(key, state))
            self.items.append((key, system.to_state(atoms)[0]))

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> tuple[CrystalSystem, Tensor]:
        key, x = self.items[i]
        return self.systems[key], x

    def num_atoms_histogram(self) -> tuple[tuple[int, int], ...]:
        """((N, count), ...) over the dataset, sorted by N."""
        counts: dict[int, int] = {}
        for key, _ in self.items:
            counts[len(key)] = counts.get(len(key), 0) + 1
        return tuple(sorted(counts.items()))


def collate_crystals(items: Sequence[tuple[CrystalSystem, Tensor]], device: torch.device | str = "cpu") -> list[tuple[CrystalSystem, Tensor]]:
    """Group (system, state) items by system: ``[(system, states (B_g, D_g)), ...]``."""
    groups: dict[int, tuple[CrystalSystem, list[Tensor]]] = {}
    for system, x in items:
        groups.setdefault(id(system), (system, []))[1].append(x)
    return [(system, torch.stack(xs).to(device)) for system, xs in groups.values()]


def crystal_denoising_profile(model: CrystalScoreModel, structures: Sequence, noise: Sequence[float], *, repeats: int = 1,
                              generator: torch.Generator | None = None) -> dict[str, Tensor]:
    """Relative noise-prediction error of ``model`` on ``structures`` (ase.Atoms) per positional noise level.

    ``noise`` are positional noise levels in Å (converted to times through the state's length
    scale); each structure is noised ``repeats`` times per level. Returns ``{"fractional": (L,),
    "lattice": (L,)}`` with ||eps_hat - eps||^2 / ||eps||^2 (0 = exact, 1 = predicting zero), see
    :func:`digmat.core.denoising_profile`.
    """
    times = model.time_of_noise(list(noise))
    data = CrystalDataset(structures, model.config.state)
    total = None
    for system, x0 in collate_crystals([data[i] for i in range(len(data))]):
        frac = torch.zeros(system.dim, dtype=x0.dtype)
        frac[: 3 * system.num_atoms] = 1.0
        with torch.no_grad():
            part = denoising_profile(system.diffusion(model.config.schedule), lambda x, t, s=system: model.eps(s, x, t), x0.repeat(repeats, 1), times,
                                     groups={"fractional": frac, "lattice": 1.0 - frac}, generator=generator)
        total = part if total is None else total.merge(part)
    return total.relative()
