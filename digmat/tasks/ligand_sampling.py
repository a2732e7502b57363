"""Sampling ligand poses with a trained model, and what is reported about them.

:func:`sample_poses` runs the reverse chain of :class:`~digmat.core.RigidDiffusion` in
batches and returns a :class:`PoseEnsemble`: every pose (Å, the protein's frame), its Vina
energy (inter + intra, kcal/mol, direct scoring) and whether its centroid lies in the site's
box. :meth:`PoseEnsemble.modes` clusters them (:func:`~digmat.ligand.cluster_modes`, 2 Å
symmetry-aware RMSD, lowest Vina energy first) with 95 % intervals over independent sampling
batches; :func:`reference_populations` assigns poses to a reference's modes, so
:func:`total_variation` compares a model with a reference ensemble mode by mode.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch

from digmat.core import RigidState, sample_rigid_sde
from digmat.ligand.energy import vina_scorer
from digmat.ligand.modes import BindingModes, cluster_modes
from digmat.ligand.system import LigandSystem

__all__ = ["PoseEnsemble", "reference_populations", "sample_poses", "total_variation"]


@dataclass
class PoseEnsemble:
    """Sampled poses of one complex.

    Attributes
    ----------
    system : LigandSystem
    positions : numpy.ndarray
        (S, N, 3) Å, Mol atom order.
    energy : numpy.ndarray
        (S,) kcal/mol, Vina inter + intra (direct).
    vina_score : numpy.ndarray
        (S,) kcal/mol, what ``Vina.score()`` reports (inter / (1 + w N_rot)).
    in_box : numpy.ndarray
        (S,) bool: centroid within ``box_radius`` Å of the site centre.
    batch : numpy.ndarray
        (S,) int: the independent sampling batch of each pose (for intervals).
    box_radius : float
    seconds : float
        Wall time of sampling (network evaluations only).
    """

    system: LigandSystem
    positions: np.ndarray
    energy: np.ndarray
    vina_score: np.ndarray
    in_box: np.ndarray
    batch: np.ndarray
    box_radius: float
    seconds: float
    _modes: BindingModes | None = field(default=None, repr=False)

    def modes(self, cutoff: float = 2.0) -> BindingModes:
        """Binding modes of the poses (cached for the default cutoff)."""
        if cutoff == 2.0 and self._modes is not None:
            return self._modes
        modes = cluster_modes(self.system.pose, self.positions, self.energy, chains=self.batch, cutoff=cutoff)
        if cutoff == 2.0:
            self._modes = modes
        return modes


@torch.no_grad()
def sample_poses(model, system: LigandSystem, num: int, *, box_radius: float = 6.0, steps: int = 200,
                 seed: int = 0, batch_size: int = 64, device=None, progress=None) -> PoseEnsemble:
    """Draw ``num`` poses of ``system`` from ``model`` (:class:`~digmat.models.LigandScoreModel`).

    Parameters
    ----------
    box_radius
        Å: poses whose centroid lies farther from the site centre are flagged (``in_box``).
    steps
        Reverse-chain steps (network evaluations per pose).
    batch_size
        Poses per batch; each batch is an independent replicate for the 95 % intervals.
    progress
        Optional callable ``progress(done, total)``.
    """
    if num < 1 or steps < 1:
        raise ValueError(f"need num >= 1 and steps >= 1, got {num}, {steps}")
    device = torch.device(device or "cpu")
    diffusion = model.diffusion(system)
    score = model.score_fn(system)
    g = torch.Generator(device="cpu").manual_seed(int(seed))
    xs, Rs, batch = [], [], []
    start = time.perf_counter()
    for k, lo in enumerate(range(0, num, batch_size)):
        n = min(batch_size, num - lo)
        prior = diffusion.sample_prior(n, generator=g, dtype=torch.float32)
        out = sample_rigid_sde(diffusion, score, n, steps=steps, generator=g, dtype=torch.float32,
                               init=RigidState(prior.x.to(device), prior.R.to(device)))
        xs.append(out.x.double().cpu())
        Rs.append(out.R.double().cpu())
        batch.append(np.full(n, k))
        if progress is not None:
            progress(lo + n, num)
    seconds = time.perf_counter() - start
    state = RigidState(torch.cat(xs), torch.cat(Rs))
    positions = system.positions(state)
    extent = float(np.linalg.norm(system.pose.template[system.pose.heavy], axis=1).max())
    scorer = vina_scorer(system.pocket, system.mol, system.center, box_radius + extent + 0.5)
    parts = [scorer(chunk) for chunk in positions.split(256)]
    energy = torch.cat([p["inter"] + p["intra"] for p in parts]).numpy()
    vina = torch.cat([p["total"] for p in parts]).numpy()
    in_box = (system.centroid_distance(state) <= box_radius).numpy()
    return PoseEnsemble(system, positions.numpy(), energy, vina, in_box, np.concatenate(batch), float(box_radius), seconds)


def reference_populations(system: LigandSystem, positions, representatives, *, cutoff: float = 2.0,
                          weights=None) -> np.ndarray:
    """Share of poses (S, N, 3) nearest to each of K reference representatives within ``cutoff`` Å
    (symmetry-aware RMSD), plus a last entry for poses near none; (K + 1,), sums to 1."""
    reps = np.asarray(representatives, float)
    d = system.pose.rmsd(positions, reps)  # (S, K)
    label = np.where(d.min(1) <= cutoff, d.argmin(1), len(reps))
    w = np.ones(len(d)) if weights is None else np.asarray(weights, float)
    return np.bincount(label, weights=w, minlength=len(reps) + 1) / w.sum()


def total_variation(p, q) -> float:
    """½ Σ |p − q| of two distributions over the same bins."""
    return 0.5 * float(np.abs(np.asarray(p, float) - np.asarray(q, float)).sum())
