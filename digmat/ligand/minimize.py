"""Local minimisation of ligand poses in pose space (centroid, orientation, torsions).

A generative model's samples and the Boltzmann samples of a soft scoring function at 300 K
contain contacts that real atoms do not make: AutoDock Vina's hydrogen-bond term is flat below
a donor–acceptor distance of 2.8 Å while its repulsion is a soft quadratic, so at k_BT = 0.6
kcal/mol N···O contacts of 2.0–2.3 Å cost less than 1 kcal/mol (PoseBusters calls anything below
0.75 of the van der Waals sum a clash). Docking programs quench every pose to its local minimum
(Vina's BFGS after each Monte Carlo step); :func:`minimize_poses` does the same for a batch.

The minimum is sought over the pose's own coordinates, so bond lengths, angles, rings and
chirality stay the template's exactly. Each pose descends on its own: gradient steps in
coordinates scaled to Å (rotation vector and torsions times the ligand's radius of gyration),
Barzilai–Borwein step lengths, a step accepted only when the energy falls (Armijo), rejected
steps shortened. Quenching maps each sample into the basin it lies in, so the populations of
binding modes (unions of basins, 2 Å wide) are kept up to poses near a mode's edge.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from digmat.core.so3 import exp_map
from digmat.ligand.pose import PoseSpace
from digmat.ligand.tempering import EnergyFn

__all__ = ["MinimizedPoses", "minimize_poses", "pose_shift"]


@dataclass
class MinimizedPoses:
    """Poses after :func:`minimize_poses`.

    Attributes
    ----------
    t, rotation, tau : torch.Tensor
        (B, 3) Å, (B, 3, 3), (B, M) rad: the minimised poses.
    energy, initial_energy : torch.Tensor
        (B,) kcal/mol (the units of the energy function) after and before.
    iterations : torch.Tensor
        (B,) int: descent iterations each pose took.
    converged : torch.Tensor
        (B,) bool: the pose stopped before ``max_iterations``: its largest gradient component fell
        below the tolerance, or its energy stopped falling (a step lowered it by less than
        ``energy_tolerance``, or no step longer than 1e-6 Å lowered it: a minimum on a kink, as
        Vina's piecewise terms make).
    evaluations : int
        Energy + gradient evaluations of single poses.
    wall_s : float
    """

    t: Tensor
    rotation: Tensor
    tau: Tensor
    energy: Tensor
    initial_energy: Tensor
    iterations: Tensor
    converged: Tensor
    evaluations: int
    wall_s: float


def _displaced(base: tuple[Tensor, Tensor, Tensor], du: Tensor, scale: float):
    """The poses ``base`` moved by ``du`` (B, 6 + M) in scaled coordinates (Å)."""
    t, rotation, tau = base
    t_new = t + du[:, :3]
    r_new = exp_map(du[:, 3:6] / scale) @ rotation
    tau_new = torch.remainder(tau + du[:, 6:] / scale + math.pi, 2 * math.pi) - math.pi
    return t_new, r_new, tau_new


def _value_and_gradient(space: PoseSpace, energy: EnergyFn, pose, scale: float) -> tuple[Tensor, Tensor]:
    """Energies (B,) at ``pose`` and their gradients (B, 6 + M) in scaled coordinates."""
    b = pose[0].shape[0]
    du = torch.zeros(b, 6 + space.num_torsions, dtype=pose[0].dtype, requires_grad=True)
    with torch.enable_grad():
        e = energy(space.positions(*_displaced(pose, du, scale)))
        (g,) = torch.autograd.grad(e.sum(), du)
    return e.detach(), g


def minimize_poses(space: PoseSpace, energy: EnergyFn, t, rotation, tau, *, max_iterations: int = 200,
                   gradient_tolerance: float = 0.05, energy_tolerance: float = 1e-6,
                   max_step: float = 0.3) -> MinimizedPoses:
    """Quench each pose to a local minimum of ``energy``.

    Parameters
    ----------
    space
        The ligand's :class:`PoseSpace`.
    energy
        Differentiable map from positions (B, N, 3) Å to energies (B,) (e.g. Vina inter + intra,
        kcal/mol); one row per pose, rows independent.
    t, rotation, tau
        (B, 3) Å, (B, 3, 3), (B, M) rad: the starting poses.
    max_iterations
        Descent iterations per pose (one energy + gradient evaluation each).
    gradient_tolerance
        A pose has converged when every gradient component lies below this (energy units per Å;
        rotations and torsions per Å of arc at the radius of gyration).
    energy_tolerance
        A pose also stops when an accepted step lowers its energy by less than this (energy units),
        e.g. on a kink of a piecewise energy, where the gradient does not vanish.
    max_step
        Å: the largest move of one coordinate in one iteration.
    """
    if max_iterations < 0:
        raise ValueError(f"max_iterations must be >= 0, got {max_iterations}")
    start = time.perf_counter()
    dtype = torch.float64
    pose = tuple(torch.as_tensor(v, dtype=dtype).clone() for v in (t, rotation, tau))
    heavy = torch.as_tensor(space.template[space.heavy], dtype=dtype)
    scale = float(max(heavy.pow(2).sum(-1).mean().sqrt(), 1.0))  # radius of gyration, Å (≥ 1)
    e, g = _value_and_gradient(space, energy, pose, scale)
    e0 = e.clone()
    b = e.shape[0]
    evaluations = b
    alpha = max_step / g.abs().amax(-1).clamp_min(1e-12)  # Å per (energy / Å)
    iterations = torch.zeros(b, dtype=torch.long)
    done = g.abs().amax(-1) < gradient_tolerance
    for _ in range(max_iterations):
        active = (~done).nonzero().squeeze(-1)
        if len(active) == 0:
            break
        sub = tuple(v[active] for v in pose)
        ga = g[active]
        step = -alpha[active, None] * ga
        step = step * (max_step / step.abs().amax(-1, keepdim=True).clamp_min(max_step))  # at most max_step
        trial = _displaced(sub, step, scale)
        e_new, g_new = _value_and_gradient(space, energy, trial, scale)
        evaluations += len(active)
        iterations[active] += 1
        ok = e_new <= e[active] + 1e-4 * (step * ga).sum(-1)  # Armijo: a sufficient decrease
        keep = active[ok]
        stalled = torch.zeros_like(done)
        stalled[keep] = (e[keep] - e_new[ok]) < energy_tolerance
        if len(keep):
            s, y = step[ok], g_new[ok] - ga[ok]
            sy = (s * y).sum(-1)
            bb = (s * s).sum(-1) / sy.clamp_min(1e-12)
            alpha[keep] = torch.where(sy > 0, bb, 2 * alpha[keep])
            for v, new in zip(pose, trial):
                v[keep] = new[ok]
            e[keep] = e_new[ok]
            g[keep] = g_new[ok]
        alpha[active[~ok]] *= 0.25
        done = done | stalled | (g.abs().amax(-1) < gradient_tolerance) | (alpha * g.abs().amax(-1) < 1e-6)
    return MinimizedPoses(pose[0], pose[1], pose[2], e, e0, iterations, done, evaluations,
                          time.perf_counter() - start)


def pose_shift(space: PoseSpace, before: Tensor, after: Tensor) -> np.ndarray:
    """Heavy-atom RMSD (Å, no superposition, no symmetry) between positions (B, N, 3) before and after."""
    a = np.asarray(before, float)[:, space.heavy]
    b = np.asarray(after, float)[:, space.heavy]
    return np.sqrt(((a - b) ** 2).sum(-1).mean(-1))
