"""Parallel-tempering Monte Carlo over ligand poses: exact Boltzmann samples of a pose energy.

The chains move in pose space (:class:`digmat.ligand.pose.PoseSpace`: centroid, rotation,
torsions) under an energy of the atom positions (kcal/mol), e.g. the Vina score of the ligand in
a fixed pocket.  Each step moves one block of every chain — its centroid (Gaussian), its
orientation (left-multiplied by exp of a Gaussian rotation vector: symmetric with respect to
the Haar measure) or all its torsions (wrapped Gaussian) — and accepts by Metropolis; the
centroid is confined to a ball (the box) around the pocket centre.  Replicas on a geometric
temperature ladder exchange configurations every ``swap_every`` steps (even and odd pairs
alternately).  Step sizes adapt towards ``target_acceptance`` during burn-in only and are
frozen afterwards, so every recorded sample comes from a chain that leaves exp(−E/kT) dt dR dτ
invariant.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from ase import units
from torch import Tensor

from digmat.core.so3 import exp_map, random_rotations
from digmat.ligand.pose import PoseSpace

__all__ = ["KB_KCAL", "PoseSamples", "TemperingConfig", "metropolis_sweep", "refine_poses", "temper_poses"]

KB_KCAL = units.kB / (units.kcal / units.mol)
"""Boltzmann constant in kcal/(mol K)."""

EnergyFn = Callable[[Tensor], Tensor]
"""Energy of poses: atom positions (B, N, 3) Å → (B,) kcal/mol."""

BLOCKS = ("translation", "rotation", "torsions")


@dataclass(frozen=True)
class TemperingConfig:
    """Settings of :func:`temper_poses`.

    Parameters
    ----------
    temperature, max_temperature : float
        K: the sampled temperature and the top of the geometric ladder.
    replicas : int
        Temperatures on the ladder (1 = plain Metropolis).
    chains : int
        Independent chains per temperature.
    steps, burn_in : int
        Monte Carlo steps in all (each moves one block of every chain) and the adapting
        steps at the start, not recorded.
    record_every, swap_every : int
        Steps between recorded samples (lowest temperature) and between exchange attempts.
    box_radius : float
        Å: the centroid stays within this distance of the centre.
    steps_init : tuple of float
        Initial step sizes: translation (Å), rotation (rad), torsions (rad).
    target_acceptance : float
        Acceptance the step sizes adapt to during burn-in.
    """

    temperature: float = 300.0
    max_temperature: float = 1500.0
    replicas: int = 8
    chains: int = 16
    steps: int = 20000
    burn_in: int = 4000
    record_every: int = 20
    swap_every: int = 10
    box_radius: float = 6.0
    steps_init: tuple[float, float, float] = (0.5, 0.3, 0.6)
    target_acceptance: float = 0.3

    def __post_init__(self) -> None:
        if not 0 < self.temperature <= self.max_temperature:
            raise ValueError("need 0 < temperature <= max_temperature (K)")
        if self.replicas < 1 or self.chains < 1 or self.record_every < 1 or self.swap_every < 1:
            raise ValueError("replicas, chains, record_every and swap_every must be >= 1")
        if not 0 <= self.burn_in < self.steps:
            raise ValueError("need 0 <= burn_in < steps")
        if not self.box_radius > 0:
            raise ValueError("box_radius must be > 0 Å")

    def temperatures(self) -> np.ndarray:
        """The ladder, K, shape (replicas,), lowest first."""
        if self.replicas == 1:
            return np.array([self.temperature])
        return self.temperature * (self.max_temperature / self.temperature) ** (np.arange(self.replicas) / (self.replicas - 1))


@dataclass
class PoseSamples:
    """Recorded poses at the lowest temperature.

    Attributes
    ----------
    t : Tensor
        Centroids (S, C, 3) Å — S records of C chains.
    rotation : Tensor
        (S, C, 3, 3).
    tau : Tensor
        Torsions (S, C, M) rad.
    energy : Tensor
        (S, C) kcal/mol.
    acceptance : dict
        Block name → acceptance rate per replica after burn-in, shape (replicas,).
    swap_rate : numpy.ndarray
        Exchange acceptance of each adjacent pair, shape (replicas − 1,).
    evaluations : int
        Energy evaluations (poses scored), all replicas.
    """

    t: Tensor
    rotation: Tensor
    tau: Tensor
    energy: Tensor
    acceptance: dict = field(default_factory=dict)
    swap_rate: np.ndarray = field(default_factory=lambda: np.zeros(0))
    step_sizes: np.ndarray = field(default_factory=lambda: np.zeros(0))
    evaluations: int = 0
    wall_s: float = 0.0

    def positions(self, space: PoseSpace) -> Tensor:
        """Atom positions of every sample, (S, C, N, 3) Å."""
        s, c = self.energy.shape
        x = space.positions(self.t.reshape(-1, 3), self.rotation.reshape(-1, 3, 3), self.tau.reshape(s * c, -1))
        return x.reshape(s, c, space.num_atoms, 3)


def temper_poses(space: PoseSpace, energy: EnergyFn, center, config: TemperingConfig = TemperingConfig(), *,
                 seed: int = 0, progress: Callable[[float], None] | None = None) -> PoseSamples:
    """Parallel-tempering Monte Carlo of ``space``'s poses under ``energy``, from random poses in the box.

    Parameters
    ----------
    space : PoseSpace
        The ligand.
    energy : callable
        Positions (B, N, 3) Å → energies (B,) kcal/mol (no gradient needed).
    center : array_like
        Shape (3,), Å: centre of the box.
    config : TemperingConfig
    seed : int
        Seeds the initial poses and every move.
    progress : callable, optional
        Called with the fraction done every 1 % of the steps.
    """
    start = time.perf_counter()
    g = torch.Generator().manual_seed(int(seed))
    dtype = torch.float64
    center_t = torch.as_tensor(np.asarray(center, float), dtype=dtype)
    temps = torch.as_tensor(config.temperatures(), dtype=dtype)
    beta = 1.0 / (KB_KCAL * temps)  # (K,) mol/kcal
    k, c, m = config.replicas, config.chains, space.num_torsions
    b = k * c
    # state, replica-major: row r * c + j is chain j at temperature r
    u = torch.rand(b, 1, generator=g, dtype=dtype) ** (1 / 3)
    t = center_t + config.box_radius * u * _unit_vectors(b, g, dtype)
    rot = random_rotations(b, g, dtype=dtype)
    tau = (torch.rand(b, m, generator=g, dtype=dtype) * 2 - 1) * math.pi
    e = energy(space.positions(t, rot, tau))
    evaluations = b
    step = torch.tensor(config.steps_init, dtype=dtype).repeat(k, 1)  # (K, 3)
    accepted = torch.zeros(k, 3, dtype=dtype)
    tried = torch.zeros(k, 3, dtype=dtype)
    swaps_accepted = np.zeros(max(k - 1, 0))
    swaps_tried = np.zeros(max(k - 1, 0))
    records: list[tuple[Tensor, Tensor, Tensor, Tensor]] = []
    replica = torch.arange(b) // c
    beta_rows = beta[replica]
    for n in range(config.steps):
        block = torch.randint(0, 3 if m else 2, (b,), generator=g)
        (t, rot, tau, e), accept, n_new = metropolis_sweep(space, energy, (t, rot, tau, e), block, step[replica, block],
                                                           beta_rows, center_t, config.box_radius, g)
        evaluations += n_new
        hits = torch.zeros(k, 3, dtype=dtype).index_put_((replica, block), accept.to(dtype), accumulate=True)
        moves = torch.zeros(k, 3, dtype=dtype).index_put_((replica, block), torch.ones(b, dtype=dtype), accumulate=True)
        if n < config.burn_in:  # adapt the step of each (replica, block) towards the target acceptance
            has = moves > 0
            step[has] *= torch.exp(0.05 * (hits[has] / moves[has] - config.target_acceptance))
            step[:, 0].clamp_(max=config.box_radius)
            step[:, 1:].clamp_(max=math.pi)
        else:
            accepted += hits
            tried += moves
        if k > 1 and (n + 1) % config.swap_every == 0:
            parity = ((n + 1) // config.swap_every) % 2
            for r in range(parity, k - 1, 2):
                lo, hi = slice(r * c, (r + 1) * c), slice((r + 1) * c, (r + 2) * c)
                log_swap = (beta[r] - beta[r + 1]) * (e[lo] - e[hi])
                ok = torch.log(torch.rand(c, generator=g, dtype=dtype)) < log_swap
                swaps_accepted[r] += float(ok.sum())
                swaps_tried[r] += c
                for arr in (t, rot, tau, e):
                    a_lo, a_hi = arr[lo].clone(), arr[hi].clone()
                    shape = (-1,) + (1,) * (arr.ndim - 1)
                    arr[lo] = torch.where(ok.view(shape), a_hi, a_lo)
                    arr[hi] = torch.where(ok.view(shape), a_lo, a_hi)
        if n >= config.burn_in and (n + 1 - config.burn_in) % config.record_every == 0:
            records.append((t[:c].clone(), rot[:c].clone(), tau[:c].clone(), e[:c].clone()))
        if progress is not None and (n + 1) % max(1, config.steps // 100) == 0:
            progress((n + 1) / config.steps)
    stack = [torch.stack(x) for x in zip(*records)] if records else [torch.zeros(0, c, *s) for s in ((3,), (3, 3), (m,), ())]
    rates = (accepted / tried.clamp(min=1)).numpy()
    return PoseSamples(
        t=stack[0], rotation=stack[1], tau=stack[2], energy=stack[3],
        acceptance={name: rates[:, i] for i, name in enumerate(BLOCKS)},
        swap_rate=swaps_accepted / np.maximum(swaps_tried, 1),
        step_sizes=step.numpy(),
        evaluations=evaluations,
        wall_s=time.perf_counter() - start,
    )


def metropolis_sweep(space: PoseSpace, energy: EnergyFn, pose: tuple[Tensor, Tensor, Tensor, Tensor], block: Tensor,
                     size: Tensor, beta: Tensor, center: Tensor, box_radius: float, g: torch.Generator
                     ) -> tuple[tuple[Tensor, Tensor, Tensor, Tensor], Tensor, int]:
    """One Metropolis move of every pose in a batch.

    ``pose`` = (t (B, 3) Å, R (B, 3, 3), τ (B, M) rad, E (B,) kcal/mol); pose b moves its ``block[b]``
    (0 centroid: Gaussian of std ``size[b]`` Å; 1 orientation: R <- exp(hat(size[b] z)) R, symmetric for
    Haar; 2 torsions: wrapped Gaussian of std ``size[b]`` rad) and is accepted with probability
    min(1, exp(−β_b ΔE)); moves that leave the ball of ``box_radius`` around ``center`` are refused.
    Returns the new pose tuple, the acceptance mask (B,) and the number of energy evaluations.
    """
    t, rot, tau, e = pose
    dtype, b, m = t.dtype, t.shape[0], tau.shape[1]
    t_new, rot_new, tau_new = t.clone(), rot.clone(), tau.clone()
    sel = block == 0
    t_new[sel] = t[sel] + size[sel, None] * torch.randn(int(sel.sum()), 3, generator=g, dtype=dtype)
    sel = block == 1
    kick = exp_map(size[sel, None] * torch.randn(int(sel.sum()), 3, generator=g, dtype=dtype))
    rot_new[sel] = kick @ rot[sel]
    sel = block == 2
    if m:
        moved = tau[sel] + size[sel, None] * torch.randn(int(sel.sum()), m, generator=g, dtype=dtype)
        tau_new[sel] = torch.remainder(moved + math.pi, 2 * math.pi) - math.pi
    inside = (t_new - center).norm(dim=-1) <= box_radius
    e_new = torch.full_like(e, math.inf)
    if inside.any():
        e_new[inside] = energy(space.positions(t_new[inside], rot_new[inside], tau_new[inside]))
    accept = inside & (torch.log(torch.rand(b, generator=g, dtype=dtype)) < -beta * (e_new - e))
    new = (torch.where(accept[:, None], t_new, t), torch.where(accept[:, None, None], rot_new, rot),
           torch.where(accept[:, None], tau_new, tau), torch.where(accept, e_new, e))
    return new, accept, int(inside.sum())


def refine_poses(space: PoseSpace, energy: EnergyFn, t: Tensor, rotation: Tensor, tau: Tensor, center, *,
                 box_radius: float, temperature: float = 300.0, steps: int = 100,
                 step_sizes: tuple[float, float, float] = (0.1, 0.05, 0.1), target_acceptance: float = 0.3,
                 seed: int = 0) -> tuple[PoseSamples, Tensor]:
    """Metropolis Monte Carlo at ``temperature`` K from given poses (each an independent chain), e.g.
    a few hundred steps that settle a generative model's samples in the exact Boltzmann density of
    ``energy``. Step sizes (Å, rad, rad) adapt towards ``target_acceptance`` during the first half;
    every move leaves the target invariant in the second half. Returns the final poses as
    :class:`PoseSamples` with one record, and the per-pose energies before refinement.
    """
    start = time.perf_counter()
    g = torch.Generator().manual_seed(int(seed))
    dtype = torch.float64
    t, rotation, tau = (torch.as_tensor(v, dtype=dtype) for v in (t, rotation, tau))
    center_t = torch.as_tensor(np.asarray(center, float), dtype=dtype)
    b, m = t.shape[0], tau.shape[1]
    beta = torch.full((b,), 1.0 / (KB_KCAL * temperature), dtype=dtype)
    e0 = energy(space.positions(t, rotation, tau))
    pose, evaluations = (t, rotation, tau, e0), b
    step = torch.tensor(step_sizes, dtype=dtype)
    accepted, tried = torch.zeros(3, dtype=dtype), torch.zeros(3, dtype=dtype)
    for n in range(steps):
        block = torch.full((b,), n % (3 if m else 2), dtype=torch.long)
        pose, accept, n_new = metropolis_sweep(space, energy, pose, block, step[block], beta, center_t, box_radius, g)
        evaluations += n_new
        rate = float(accept.to(dtype).mean())
        if n < steps // 2:
            step[block[0]] *= math.exp(0.2 * (rate - target_acceptance))
        else:
            accepted[block[0]] += rate
            tried[block[0]] += 1
    rates = (accepted / tried.clamp(min=1)).numpy()
    samples = PoseSamples(t=pose[0][None], rotation=pose[1][None], tau=pose[2][None], energy=pose[3][None],
                          acceptance={name: np.array([rates[i]]) for i, name in enumerate(BLOCKS)},
                          swap_rate=np.zeros(0), step_sizes=step[None].numpy(), evaluations=evaluations,
                          wall_s=time.perf_counter() - start)
    return samples, e0


def _unit_vectors(num: int, g: torch.Generator, dtype) -> Tensor:
    v = torch.randn(num, 3, generator=g, dtype=dtype)
    return v / v.norm(dim=-1, keepdim=True)
