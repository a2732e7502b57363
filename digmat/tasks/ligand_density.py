"""Log-densities of ligand poses under a ligand score model (the probability-flow ODE of its poses).

A pose is the heavy-atom centroid c (Å), the orientation R and the M rotatable torsions tau (rad)
of :class:`~digmat.ligand.pose.PoseSpace`; the model's state is x = ((c - centre) / L, tau) and R.
:func:`pose_log_density` carries each pose to the prior with
:func:`digmat.core.rigid_log_prob` and returns

    log p(c, R, tau) = log p_state(x, R) - 3 log L,

in nats per Å^3 of centroid, per rad^M of torsions and per unit-mass Haar measure of orientations
(for the rotation-vector volume element near the identity, rad^3, subtract log 8 pi^2). This is the
density of the pose *coordinates*: a ligand with symmetric groups has several coordinate images
of one structure (a ring flipped by pi), each with its own density.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from digmat.core import RigidFlowConfig, RigidState, rigid_log_prob
from digmat.ligand.tempering import KB_KCAL

__all__ = ["boltzmann_importance_weights", "pose_log_density"]


def pose_log_density(model, system, poses, *, config: RigidFlowConfig = RigidFlowConfig(), batch_size: int = 64,
                     device=None, progress=None) -> np.ndarray:
    """log p of ligand poses under ``model`` (nats per Å^3 · rad^M · unit Haar), shape (B,).

    Parameters
    ----------
    model
        A ligand score model (:class:`~digmat.models.LigandScoreModel`: ``diffusion(system)`` and
        ``score_fn(system)``).
    system
        The :class:`~digmat.ligand.LigandSystem` the poses belong to (``model.system(...)``).
    poses
        ``ase.Atoms`` (one or a list) or positions (B, N, 3) / (N, 3) Å in the Mol's atom order;
        not modified.
    config
        Steps of the ODE (the error falls as steps^-2; :class:`~digmat.core.RigidFlowConfig`).
    batch_size
        Poses per ODE batch (memory: one forward and D + 3 backward graphs per batch).
    progress
        Optional callable ``progress(done, total)``.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    param = next(model.parameters(), None) if hasattr(model, "parameters") else None
    dtype = param.dtype if param is not None else torch.float64
    device = torch.device(device) if device is not None else (param.device if param is not None else torch.device("cpu"))
    state = system.to_state(poses, dtype=torch.float64)
    diffusion, score = model.diffusion(system), model.score_fn(system)
    out = []
    for lo in range(0, len(state.x), batch_size):
        part = RigidState(state.x[lo:lo + batch_size].to(device, dtype), state.R[lo:lo + batch_size].to(device, dtype))
        out.append(rigid_log_prob(diffusion, score, part, config).log_prob.double().cpu())
        if progress is not None:
            progress(min(lo + batch_size, len(state.x)), len(state.x))
    return torch.cat(out).numpy() - 3 * math.log(system.length_scale)


def boltzmann_importance_weights(log_density, energy, temperature: float, *, keep=None) -> tuple[np.ndarray, float]:
    """Self-normalised importance weights of model samples towards exp(−E/k_BT) in the same pose
    coordinates: w ∝ exp(−E/k_BT − log p), and their effective sample size (Σw)² / Σw².

    Parameters
    ----------
    log_density
        (S,) log p of each raw model sample (:func:`pose_log_density`).
    energy
        (S,) kcal/mol, the energy whose Boltzmann distribution is the target (e.g. Vina inter + intra).
    temperature
        K.
    keep
        Optional (S,) bool: samples outside the target's support (e.g. outside the box) get weight 0.
    """
    log_p, e = np.asarray(log_density, float), np.asarray(energy, float)
    if log_p.shape != e.shape or log_p.ndim != 1:
        raise ValueError(f"log_density and energy must be (S,) arrays of one length, got {log_p.shape} and {e.shape}")
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0 K, got {temperature}")
    log_w = -e / (KB_KCAL * temperature) - log_p
    if keep is not None:
        log_w = np.where(np.asarray(keep, bool), log_w, -np.inf)
    if not np.isfinite(log_w).any():
        raise ValueError("no sample has a finite weight")
    w = np.exp(log_w - log_w[np.isfinite(log_w)].max())
    w /= w.sum()
    return w, float(1.0 / (w**2).sum())
