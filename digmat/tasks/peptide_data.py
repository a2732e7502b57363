"""Training data of the peptide model from reference ensembles, and its training loop.

A reference folder holds one subfolder per sequence with metadynamics runs
(``run0.npz``, ``run1.npz``: :class:`digmat.protein.MetadynamicsRun`).  Each run's recorded
state torsions after the burn-in carry final-bias weights; :class:`PeptideDataset` turns them
into unweighted training states by multinomial resampling (``samples_per_peptide`` draws,
split evenly over the runs, seeded), so every peptide weighs the same in training whatever
its runs' lengths.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from digmat.models.peptide import PeptideModelConfig, PeptideScoreModel, peptide_dsm_loss
from digmat.protein import MetadynamicsRun, check_sequence
from digmat.systems.peptide import PeptideSystem
from digmat.train import TrainConfig, Trainer

__all__ = ["PeptideDataset", "collate_peptides", "load_reference_runs", "train_peptide_model"]


def load_reference_runs(folder: str | os.PathLike, sequence: str) -> list[MetadynamicsRun]:
    """The finished runs of ``sequence`` under ``folder`` (``folder/SEQ/run*.npz``), sorted by name.

    Raises
    ------
    FileNotFoundError
        If there is none (names the folder).
    """
    seq = check_sequence(sequence)
    paths = sorted(Path(folder, seq).glob("run*.npz"))
    if not paths:
        raise FileNotFoundError(f"no reference runs for {seq!r} in {Path(folder, seq)}")
    return [MetadynamicsRun.load(p) for p in paths]


class PeptideDataset:
    """Resampled reference states of several peptides, as ``(peptide index, state, T)`` items.

    Parameters
    ----------
    folder : path-like
        Reference folder (see module docstring).
    sequences : sequence of str
        Peptides to include (each needs finished runs).
    samples_per_peptide : int
        Resampled states per peptide.
    seed : int
        Seed of the resampling.
    """

    def __init__(self, folder: str | os.PathLike, sequences: Sequence[str], *, samples_per_peptide: int = 20000,
                 seed: int = 0):
        rng = np.random.default_rng(seed)
        self.systems: list[PeptideSystem] = []
        self.states: list[Tensor] = []
        self.temperatures: list[float] = []
        self.effective_samples: list[float] = []
        for seq in sequences:
            runs = load_reference_runs(folder, seq)
            system = PeptideSystem.from_sequence(seq)
            names = [f"{d.name}:{d.residue}" for d in system.torsions]
            rows = []
            n_eff = 0.0
            for k, run in enumerate(runs):
                if run.torsion_names != names:
                    raise ValueError(f"{seq} run {k} records torsions {run.torsion_names}, the system has {names}")
                w = run.weights()
                n_eff += 1.0 / np.sum(w**2)
                share = samples_per_peptide // len(runs) + (k < samples_per_peptide % len(runs))
                rows.append(run.torsions[rng.choice(len(w), size=share, p=w)])
            self.systems.append(system)
            self.states.append(system.states_from_degrees(np.concatenate(rows), dtype=torch.float32))
            self.temperatures.append(float(runs[0].temperature))
            self.effective_samples.append(n_eff)
        self.index = [(p, i) for p, s in enumerate(self.states) for i in range(len(s))]

    @property
    def sequences(self) -> list[str]:
        return [s.sequence for s in self.systems]

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, item: int) -> tuple[int, Tensor, float]:
        p, i = self.index[item]
        return p, self.states[p][i], self.temperatures[p]

    def collate(self, items: list[tuple[int, Tensor, float]], device: torch.device):
        """Group items by peptide: ``[(system, states (B_p, dim_p), T (B_p,))]``."""
        return collate_peptides(self.systems, items, device)


def collate_peptides(systems: Sequence[PeptideSystem], items, device: torch.device):
    """``[(system, states, temperatures)]`` per peptide present in ``items``."""
    groups: dict[int, list] = {}
    for p, state, temp in items:
        groups.setdefault(p, []).append((state, temp))
    out = []
    for p in sorted(groups):
        states = torch.stack([s for s, _ in groups[p]]).to(device)
        temps = torch.tensor([t for _, t in groups[p]], dtype=states.dtype, device=device)
        out.append((systems[p], states, temps))
    return out


def train_peptide_model(
    dataset: PeptideDataset,
    out_dir: str | os.PathLike,
    *,
    config: PeptideModelConfig = PeptideModelConfig(),
    train_config: TrainConfig = TrainConfig(),
    metadata: dict[str, Any] | None = None,
    progress: bool = True,
) -> tuple[PeptideScoreModel, dict[str, Any]]:
    """Train a :class:`PeptideScoreModel` on ``dataset`` (resumable from ``out_dir``).

    Returns
    -------
    (model, last log record)
        The model carries the final (non-EMA) weights; ``out_dir/model.pt`` has both.
    """
    temps = dataset.temperatures
    config = PeptideModelConfig(**{**config.to_dict(), "schedule": config.schedule,
                                   "temperature_range": (min(temps), max(temps)),
                                   "training_sequences": tuple(dataset.sequences)})
    model = PeptideScoreModel(config)
    meta = {"kind": "peptide", "sequences": dataset.sequences,
            "effective_samples": [round(n, 1) for n in dataset.effective_samples], **(metadata or {})}
    trainer = Trainer(model, peptide_dsm_loss, dataset, dataset.collate, train_config, out_dir,
                      model_config=config.to_dict(), metadata=meta, progress=progress)
    last = trainer.fit()
    return model, last
