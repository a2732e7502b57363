"""Training data of the ligand model from reference ensembles, the complexes they belong to, and the loop.

A reference folder (``recipes/reference_ligands.py``) holds one subfolder per complex with
``samples.npz`` (centroids, rotations, torsions and importance weights of every recorded pose)
and ``summary.json`` (its settings). :func:`load_complex` rebuilds a complex — ligand, pocket,
site centre and box — from a PoseBusters example name or the files the summary names;
:class:`LigandDataset` resamples each complex's weighted poses into ``samples_per_complex``
unweighted training states (seeded), so every complex weighs the same in training.
:func:`reference_weights` gives a reference's sample weights: its own (Vina's Boltzmann weights)
or those a calculator gave its modes (``weights_<calculator>.npz`` of
``recipes/weigh_reference_ligands.py``).
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from digmat.core import RigidState
from digmat.ligand.checks import POSEBUSTERS_EXAMPLES, posebusters_example
from digmat.ligand.molecule import ligand_atoms, read_ligand
from digmat.ligand.pocket import extract_pocket
from digmat.ligand.system import LigandSystem, site_pocket_radius
from digmat.models.ligand import LigandModelConfig, LigandScoreModel, ligand_dsm_loss
from digmat.train import TrainConfig, Trainer

__all__ = ["LigandComplex", "LigandDataset", "build_complex", "complex_files", "load_complex", "read_mode_molecules", "reference_mode_populations",
           "reference_weights", "train_ligand_model"]


@dataclass
class LigandComplex:
    """A complex as the model sees it: the system (ligand, pocket, centre), the box radius (Å),
    the input files and the crystal pose (N, 3) Å."""

    name: str
    system: LigandSystem
    box_radius: float
    protein: Path
    ligand_file: Path
    crystal: np.ndarray


def complex_files(name: str, folder: str | os.PathLike | None = None) -> tuple[Path, Path]:
    """(protein, ligand SDF) of a PoseBusters example, or those named in ``folder/name/summary.json``
    (a relative name is relative to that file's folder)."""
    if name in POSEBUSTERS_EXAMPLES:
        return posebusters_example(name)
    summary = Path(folder or ".", name, "summary.json")
    if not summary.is_file():
        raise FileNotFoundError(f"{name!r} is not a PoseBusters example and {summary} does not exist")
    data = json.loads(summary.read_text())
    return summary.parent / data["protein"], summary.parent / data["ligand_file"]


def build_complex(name: str, protein, mol, model: LigandScoreModel, *, center=None,
                  box_radius: float = 6.0) -> LigandComplex:
    """The :class:`LigandComplex` of ``mol`` (RDKit, explicit H; its conformer is the template and the
    reference pose) in ``protein`` (a PDB/mmCIF path) for ``model``: the site centre is ``center``
    (3,) Å or the ligand's heavy-atom centroid, the pocket holds every residue the model and Vina
    scoring can see from the box (:func:`~digmat.ligand.system.site_pocket_radius`)."""
    if not box_radius > 0:
        raise ValueError(f"the box radius must be > 0 Å, got {box_radius}")
    lig = ligand_atoms(mol)
    heavy = lig.positions[lig.numbers > 1]
    center = heavy.mean(axis=0) if center is None else np.asarray(center, dtype=float).reshape(3)
    extent = float(np.linalg.norm(heavy - heavy.mean(axis=0), axis=1).max())
    pocket = extract_pocket(protein, center, radius=site_pocket_radius(box_radius, extent, model.config.cutoff))
    gap = float(np.linalg.norm(pocket.atoms.positions - center, axis=1).min())
    if gap > box_radius:
        raise ValueError(f"the site centre lies {gap:.1f} Å from the nearest protein atom, beyond the {box_radius:g} Å "
                         "box: it is outside the protein (give --center inside the binding site)")
    return LigandComplex(name, model.system(mol, pocket, center), float(box_radius), Path(protein), Path(), lig.positions)


def load_complex(name: str, model: LigandScoreModel, *, box_radius: float = 6.0,
                 folder: str | os.PathLike | None = None) -> LigandComplex:
    """The :class:`LigandComplex` ``name`` (PoseBusters example or reference folder) for ``model``."""
    protein, sdf = complex_files(name, folder)
    found = build_complex(name, protein, read_ligand(sdf), model, box_radius=box_radius)
    found.ligand_file = Path(sdf)
    return found


def reference_weights(folder: str | os.PathLike, weights: str | None = None) -> np.ndarray:
    """Sample weights (records, chains) of the reference in ``folder``.

    ``weights`` None: the reference's own (``samples.npz``); a calculator name (e.g. ``"gfnff"``):
    ``weights_<name>.npz``, the same samples with their modes weighed by that calculator.
    """
    own = np.load(Path(folder, "samples.npz"))["weights"]
    if weights is None:
        return own
    path = Path(folder, f"weights_{weights}.npz")
    if not path.is_file():
        raise FileNotFoundError(f"no {weights} weights at {path} (run recipes/weigh_reference_ligands.py)")
    found = np.load(path)["weights"]
    if found.shape != own.shape:
        raise ValueError(f"{path} holds weights of shape {found.shape}, the samples are {own.shape}")
    return found


def read_mode_molecules(folder: str | os.PathLike) -> list:
    """The mode representatives (RDKit molecules, file order) of a reference: ``modes.sdf``, or
    ``modes.sdf.gz`` where the recipe compressed a long one."""
    import gzip

    from rdkit import Chem

    plain, packed = Path(folder, "modes.sdf"), Path(folder, "modes.sdf.gz")
    if plain.is_file():
        return list(Chem.SDMolSupplier(str(plain), removeHs=False, sanitize=False))
    if not packed.is_file():
        raise FileNotFoundError(f"no modes.sdf(.gz) in {folder}")
    with gzip.open(packed) as handle:
        return list(Chem.ForwardSDMolSupplier(handle, removeHs=False, sanitize=False))


def reference_mode_populations(folder: str | os.PathLike, weights: str | None = None, *,
                               molecules: list | None = None) -> np.ndarray:
    """Populations (K,) of the modes of ``folder/modes.sdf`` (in its order): the reference's own,
    or with ``weights`` (a calculator name) those of ``weights_<name>.json``. ``molecules``: the
    modes already read (:func:`read_mode_molecules`), so the file is not parsed twice."""
    if weights is None:
        mols = read_mode_molecules(folder) if molecules is None else molecules
        return np.array([float(m.GetProp("population")) for m in mols])
    path = Path(folder, f"weights_{weights}.json")
    if not path.is_file():
        raise FileNotFoundError(f"no {weights} mode populations at {path} (run recipes/weigh_reference_ligands.py)")
    return np.asarray(json.loads(path.read_text())["mode_populations"], float)


class LigandDataset:
    """Resampled reference poses of several complexes, as ``(complex index, x, R)`` items.

    Parameters
    ----------
    folder
        Reference folder (module docstring).
    complexes
        The :class:`LigandComplex` of each name to include, in order.
    samples_per_complex
        Resampled poses per complex.
    seed
        Seed of the resampling.
    weights
        None: the references' own weights; a calculator name: their modes weighed by it
        (:func:`reference_weights`).
    """

    def __init__(self, folder: str | os.PathLike, complexes: Sequence[LigandComplex], *,
                 samples_per_complex: int = 20000, seed: int = 0, weights: str | None = None):
        rng = np.random.default_rng(seed)
        self.complexes = list(complexes)
        self.states: list[RigidState] = []
        self.effective_samples: list[float] = []
        for c in self.complexes:
            path = Path(folder, c.name, "samples.npz")
            if not path.is_file():
                raise FileNotFoundError(f"no reference samples for {c.name!r} at {path}")
            data = np.load(path)
            w = reference_weights(Path(folder, c.name), weights).reshape(-1).astype(np.float64)
            w = w / w.sum()
            pick = rng.choice(len(w), size=samples_per_complex, p=w)
            tau = data["tau"].reshape(len(w), -1)[pick]
            if tau.shape[1] != c.system.num_torsions:
                raise ValueError(f"{c.name}: samples have {tau.shape[1]} torsions, the system {c.system.num_torsions}")
            self.states.append(c.system.state_of(data["t"].reshape(-1, 3)[pick], data["rotation"].reshape(-1, 3, 3)[pick],
                                                 tau, dtype=torch.float32))
            self.effective_samples.append(float(1.0 / np.sum(w**2)))
        self.index = [(k, i) for k, s in enumerate(self.states) for i in range(len(s.x))]

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.complexes]

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, item: int) -> tuple[int, int]:
        return self.index[item]

    def collate(self, items: list[tuple[int, int]], device: torch.device) -> list[tuple[LigandSystem, RigidState]]:
        """Group items by complex: ``[(system, clean states)]``."""
        groups: dict[int, list[int]] = {}
        for k, i in items:
            groups.setdefault(k, []).append(i)
        out = []
        for k in sorted(groups):
            idx = torch.as_tensor(groups[k])
            s = self.states[k]
            out.append((self.complexes[k].system, RigidState(s.x[idx].to(device), s.R[idx].to(device))))
        return out


def ligand_batch_loss(model, groups, generator: torch.Generator, *, time: float | None = None) -> torch.Tensor:
    """Mean DSM loss over the poses of every complex in the batch (each pose weighs the same).

    ``time``: train at this one diffusion time instead of the model's time distribution (a
    diagnostic: can the network reach the denoising floor at one noise level?).
    """
    total = sum(len(s.x) for _, s in groups)

    def times(s: RigidState) -> torch.Tensor | None:
        return None if time is None else torch.full((len(s.x),), float(time), dtype=s.x.dtype, device=s.x.device)

    return sum(ligand_dsm_loss(model, system, s, t=times(s), generator=generator).loss * (len(s.x) / total) for system, s in groups)


def train_ligand_model(dataset: LigandDataset, model: LigandScoreModel, out_dir: str | os.PathLike, *,
                       train_config: TrainConfig = TrainConfig(), metadata: dict[str, Any] | None = None,
                       progress: bool = True, time: float | None = None) -> dict[str, Any]:
    """Train ``model`` on ``dataset`` (resumable from ``out_dir``); returns the last log record.

    ``time``: train at one diffusion time only (:func:`ligand_batch_loss`)."""
    config = LigandModelConfig(**{**model.config.to_dict(), "schedule": model.config.schedule,
                                  "training_complexes": tuple(dataset.names)})
    model.config = config
    meta = {"kind": "ligand", "complexes": dataset.names,
            "effective_samples": [round(n, 1) for n in dataset.effective_samples], **(metadata or {})}
    trainer = Trainer(model, functools.partial(ligand_batch_loss, time=time), dataset, dataset.collate, train_config, out_dir,
                      model_config=config.to_dict(), metadata=meta, progress=progress, deterministic=False)
    return trainer.fit()
