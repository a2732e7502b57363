"""Replica exchange (parallel tempering) with MALA moves on a :class:`StateSpace`.

``R`` rungs at inverse temperatures ``beta_0 > beta_1 > ... > beta_{R-1}`` each run ``C``
chains on ``p_k(x) ∝ exp(-beta_k E(x))``. A sweep is ``moves`` MALA steps on every rung
(:func:`~.mcmc.mala`, per-rung step sizes adapted during burn-in), then swaps between
neighbouring rungs — even pairs (0,1), (2,3), ... on even sweeps, odd pairs on odd ones — of
chain c's states, accepted with probability ``min(1, exp((beta_k - beta_{k+1}) (E_k - E_{k+1})))``,
which leaves the product of the rungs' distributions invariant. Hot rungs cross barriers that
cold ones cannot, and swaps carry those crossings down, so the cold rungs' basin populations
converge where plain MALA stays in its starting basins.

Each state's energy and gradient are kept with it (a swap moves them along; the target at a
new rung is ``-beta E``), so one MALA step costs one evaluation per chain and rung, and swaps
cost none. States where the energy is not finite are rejected moves (e.g. a confining wall).

With ``jump=`` (:class:`~.jump.MixtureJump`) every ``jump_every``-th sweep also makes one
mode-jumping independence move per chain and rung (:func:`~.jump.mixture_jump`): chains then
reach basins that neither their MALA steps nor the hot rungs cross to.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from .jump import MixtureJump, mixture_jump
from .mcmc import log_target_and_grad, mala
from .space import StateSpace

__all__ = ["EnergyFn", "ReplicaExchangeResult", "replica_exchange_mala"]

EnergyFn = Callable[[Tensor], Tensor]
"""An energy ``x (B, *shape) -> E (B,)``, differentiable in x, in the units of 1 / beta."""


@dataclass
class ReplicaExchangeResult:
    """Recorded states of every rung and the run's statistics.

    Attributes
    ----------
    samples
        (R, S, C, *shape): rung k's states at the S recorded sweeps (after burn-in).
    energy
        (R, S, C) their energies.
    energy_grad
        (R, S, C, *shape) the energies' gradients there (the target score at rung k is
        ``-betas[k] * energy_grad[k]``: what target score matching trains on).
    betas
        (R,) inverse temperatures, coldest first.
    acceptance
        (R,) MALA acceptance rate per rung after burn-in.
    swap_acceptance
        (R - 1,) acceptance of swaps between rungs k and k + 1 after burn-in (NaN if none tried).
    step_size
        (R, C) the step sizes used after burn-in.
    evaluations
        Energy (+ gradient) evaluations spent.
    final, final_energy, final_grad
        (R, C, *shape), (R, C), (R, C, *shape): the states after the last sweep with their
        energies and gradients — where a continued run starts (``start=``).
    jump_acceptance, jump_sweeps
        (R,) acceptance of the mode-jumping moves per rung after burn-in (NaN if none tried), and
        the number of post-burn-in sweeps that made them (to pool pieces of a continued run).
    """

    samples: Tensor
    energy: Tensor
    energy_grad: Tensor
    betas: Tensor
    acceptance: Tensor
    swap_acceptance: Tensor
    step_size: Tensor
    evaluations: int
    final: Tensor
    final_energy: Tensor
    final_grad: Tensor
    jump_acceptance: Tensor
    jump_sweeps: int


def _swap_rungs(values: Tensor, lower: Tensor, upper: Tensor, swap: Tensor) -> None:
    """Exchange ``values[lower, c]`` and ``values[upper, c]`` (R, C, ...) in place where ``swap`` (P, C)."""
    mask = swap.reshape(swap.shape + (1,) * (values.ndim - 2))
    lo, up = values[lower], values[upper]                                    # copies (advanced indexing)
    values[lower], values[upper] = torch.where(mask, up, lo), torch.where(mask, lo, up)


def replica_exchange_mala(space: StateSpace, energy: EnergyFn, x: Tensor, betas, *, sweeps: int, burn_in: int,
                          moves: int = 1, step_size: float | Tensor = 1e-2, adapt_rate: float = 0.3,
                          record_every: int = 1, start: tuple[Tensor, Tensor] | None = None,
                          first_sweep: int = 0, preconditioner: Tensor | None = None, jump: MixtureJump | None = None,
                          jump_every: int = 1, generator: torch.Generator | None = None) -> ReplicaExchangeResult:
    """Run replica exchange with MALA moves.

    Parameters
    ----------
    energy
        ``E(x)`` (B,) in the units of 1 / beta (e.g. eV with beta = 1 / k_B T).
    x
        (C, *shape) starting states, copied to every rung, or (R, C, *shape) one set per rung.
    betas
        (R,) inverse temperatures, strictly decreasing (coldest first).
    sweeps, burn_in
        Sweeps in all, and how many of them adapt the step sizes and are not recorded
        (``burn_in == sweeps``: a burn-in piece of a run continued later, nothing recorded).
    moves
        MALA steps per rung and sweep.
    step_size, adapt_rate
        Starting MALA step size (squared state units; a number, (R,) per rung or (R, C) per
        chain) and the burn-in adaptation rate (see :func:`~.mcmc.mala`).
    record_every
        Record the rungs' states every this many sweeps after burn-in.
    start
        ``(E (R, C), grad E (R, C, *shape))`` at the starting states when already known (a run
        continued from another's last recorded sweep, with its ``step_size``): not evaluated again.
    preconditioner
        Diagonal (*shape) M of the MALA proposals (see :func:`~.mcmc.mala`).
    first_sweep
        Sweeps already run before this call (a continued run): which neighbour pairs swap on
        each sweep follows the global count, so a run continued in pieces with the same
        generator reproduces the uninterrupted one.
    jump, jump_every
        A mode-jumping proposal (:class:`~.jump.MixtureJump`) tried on every chain and rung after
        the MALA moves of each sweep whose global number is a multiple of ``jump_every``.
    """
    betas = torch.as_tensor(betas, dtype=x.dtype, device=x.device).reshape(-1)
    rungs = betas.shape[0]
    if rungs < 1 or not (betas > 0).all() or not torch.isfinite(betas).all():
        raise ValueError("betas must be positive and finite")
    if rungs > 1 and not (betas[1:] < betas[:-1]).all():
        raise ValueError("betas must be strictly decreasing (coldest rung first)")
    if not isinstance(first_sweep, int) or first_sweep < 0:
        raise ValueError(f"first_sweep must be a non-negative integer, got {first_sweep!r}")
    for name, value in (("sweeps", sweeps), ("moves", moves), ("record_every", record_every), ("jump_every", jump_every)):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if not isinstance(burn_in, int) or not 0 <= burn_in <= sweeps:
        raise ValueError(f"burn_in must be an integer in [0, sweeps], got {burn_in!r}")
    shape = space.shape
    if x.shape[1:] == shape:
        x = x[None].expand(rungs, *x.shape)
    if x.ndim != len(shape) + 2 or x.shape[0] != rungs or x.shape[2:] != shape:
        raise ValueError(f"x must be (C, *{tuple(shape)}) or ({rungs}, C, *{tuple(shape)}), got {tuple(x.shape)}")
    chains = x.shape[1]
    flat = x.reshape(rungs * chains, *shape).clone()
    space.check(flat, "x")
    row_beta = betas.repeat_interleave(chains)
    expand = (-1, *([1] * len(shape)))
    h = torch.as_tensor(step_size, dtype=x.dtype, device=x.device)
    if h.shape != (rungs, chains):
        h = (h.reshape(-1, 1) if h.ndim else h).expand(rungs, chains)
    h = h.reshape(-1).clone()

    def log_target(y: Tensor) -> Tensor:
        return -row_beta * energy(y)

    if start is None:
        logu, grad = log_target_and_grad(log_target, flat)
        evaluations = flat.shape[0]
        e, g = -logu / row_beta, -grad / row_beta.reshape(expand)      # energies and gradients, kept with the states
    else:
        e, g = (v.to(x).reshape(rungs * chains, *v.shape[2:]) for v in start)
        if e.shape != (rungs * chains,) or g.shape != flat.shape:
            raise ValueError(f"start must be (E ({rungs}, {chains}), grad ({rungs}, {chains}, *{tuple(shape)}))")
        evaluations = 0
    if not torch.isfinite(e).all():
        raise ValueError("the energy is not finite at some starting states")
    gen_device = generator.device if generator is not None else x.device
    samples, energies, grads = [], [], []
    accepted = torch.zeros(rungs, dtype=x.dtype, device=x.device)
    swaps_tried = torch.zeros(max(rungs - 1, 0), dtype=x.dtype, device=x.device)
    swaps_done = torch.zeros_like(swaps_tried)
    jumps_tried, jumps_done = 0, torch.zeros(rungs, dtype=x.dtype, device=x.device)
    for sweep in range(sweeps):
        burning = sweep < burn_in
        moved = mala(space, log_target, flat, steps=moves, step_size=h, adapt=burning, adapt_rate=adapt_rate,
                     start=(-row_beta * e, -row_beta.reshape(expand) * g), preconditioner=preconditioner,
                     generator=generator)
        evaluations += moved.evaluations
        flat, h = moved.x, moved.step_size
        e, g = -moved.log_target / row_beta, -moved.grad / row_beta.reshape(expand)
        if not burning:
            accepted += moved.acceptance.reshape(rungs, chains).mean(1)
        if jump is not None and (sweep + first_sweep) % jump_every == 0:
            jumped = mixture_jump(space, log_target, flat, jump, start=(-row_beta * e, -row_beta.reshape(expand) * g),
                                  generator=generator)
            evaluations += jumped.evaluations
            flat = jumped.x
            e, g = -jumped.log_target / row_beta, -jumped.grad / row_beta.reshape(expand)
            if not burning:
                jumps_tried += 1
                jumps_done += jumped.accepted.to(x.dtype).reshape(rungs, chains).mean(1)
        # swaps between neighbouring rungs: even pairs on even sweeps, odd pairs on odd ones
        parity = (sweep + first_sweep) % 2
        lower = torch.arange(parity, max(rungs - 1, parity), 2, device=x.device)
        if lower.numel():
            state, en, gr = flat.reshape(rungs, chains, *shape), e.reshape(rungs, chains), g.reshape(rungs, chains, *shape)
            upper = lower + 1
            log_ratio = (betas[lower] - betas[upper])[:, None] * (en[lower] - en[upper])
            u = torch.rand(log_ratio.shape, generator=generator, device=gen_device, dtype=x.dtype).to(x.device)
            swap = torch.log(u) < log_ratio                                  # (P, C)
            for values in (state, en, gr):
                _swap_rungs(values, lower, upper, swap)
            flat, e, g = state.reshape(rungs * chains, *shape), en.reshape(-1), gr.reshape(rungs * chains, *shape)
            if not burning:
                swaps_tried[lower] += 1
                swaps_done[lower] += swap.to(x.dtype).mean(1)
        if not burning and (sweep - burn_in) % record_every == 0:
            samples.append(flat.reshape(rungs, chains, *shape).clone())
            energies.append(e.reshape(rungs, chains).clone())
            grads.append(g.reshape(rungs, chains, *shape).clone())
    kept = sweeps - burn_in
    last_x, last_e, last_g = flat.reshape(rungs, chains, *shape), e.reshape(rungs, chains), g.reshape(rungs, chains, *shape)

    def stack(parts: list[Tensor], like: Tensor) -> Tensor:     # (R, S, C, ...); S = 0 when nothing was recorded
        return torch.stack(parts, 1) if parts else like.new_zeros(like.shape[0], 0, *like.shape[1:])

    return ReplicaExchangeResult(samples=stack(samples, last_x), energy=stack(energies, last_e),
                                 energy_grad=stack(grads, last_g), betas=betas,
                                 acceptance=accepted / kept if kept else torch.full_like(accepted, float("nan")),
                                 swap_acceptance=swaps_done / swaps_tried, step_size=h.reshape(rungs, chains),
                                 evaluations=evaluations, final=last_x, final_energy=last_e, final_grad=last_g,
                                 jump_acceptance=jumps_done / jumps_tried if jumps_tried else torch.full_like(jumps_done, float("nan")),
                                 jump_sweeps=jumps_tried)
