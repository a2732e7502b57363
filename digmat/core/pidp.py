"""Physics-informed diffusion pre-training (PIDP): a diffusion model from an energy alone.

DiG's second way of learning needs no samples of the target ``p(x) ∝ u(x) = exp(-E(x)/kT)``.
digmat trains a *log-density* model ``l_theta(x, t)`` (the score is its gradient,
:func:`~.fpe.potential_score`) so that

1. at t = 0 its score equals the target's, ``grad l(x, 0) = grad log u(x)`` (``score`` term), and
   its values equal ``log u`` up to one constant (``value`` term: the batch variance of
   ``l(x, 0) - log u(x)``) — the values carry the relative weights of separated minima, which
   gradients inside each basin cannot;
2. for t > 0 it satisfies the Fokker–Planck equation of the forward process
   (:func:`~.fpe.log_density_residual`, ``fpe`` term), which carries both down to the prior.

The constant left free in (1) does not depend on t and the equation is blind to it, so the
three terms together determine ``l = log p_t + const`` everywhere the collocation points go.

**Collocation** (where the terms are evaluated) is a replay buffer of states: started from the
caller's states (e.g. broad draws relaxed by a few MALA steps), and every ``refresh_every``
steps a fraction is replaced by the model's own samples moved by a few MALA steps on the
target (:mod:`.mcmc`), so the points follow the model towards the target's basins while the
MALA steps keep them honest. FPE points are buffer states noised to a random t.

**Target score matching on the buffer** (``tsm`` term, :func:`~.loss.target_score_loss`): the
buffer's states carry their target scores (evaluated once, when they enter), and
``grad log p_t(x_t) = E[grad log u(x_0) / alpha | x_t]`` carries the t = 0 score to every t for
states distributed like the target — the posterior-mean form of what the FPE term does with the
PDE. It is exact at low noise, where the FPE residual struggles, but it learns the *buffer's*
distribution: right when MALA has equilibrated the buffer (or when basins are related by
symmetry), wrong in the weights of basins MALA cannot cross — which the value term sees.

**Mixed objective**: with some data, :func:`pidp_loss` adds the usual DSM term on them.

**Sampling** (:func:`metropolis_corrector`): a log-density model has values, so its reverse-SDE
samples can be finished by MALA on its own ``l(x, 0)`` — Metropolis-adjusted, exact for the
model's density and free of target evaluations. The diffusion places samples across basins; the
corrector equilibrates them inside each.

The cost that matters for comparisons with MCMC is the number of target evaluations (each an
energy and its gradient), counted in :attr:`PIDPLoss.evaluations` and :attr:`PIDPHistory.evaluations`;
:func:`fit_pidp` evaluates each buffer state once, when it enters the buffer.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from .diffusion import Diffusion
from .fpe import DIVERGENCES, LogDensityFn, log_density_residual, potential_score
from .loss import dsm_loss, target_score_loss
from .mcmc import LogTargetFn, MALAResult, log_target_and_grad, mala
from .sde import sample_sde

LR_DECAYS = ("cosine", "none")

__all__ = ["PIDPConfig", "PIDPHistory", "PIDPLoss", "fit_pidp", "metropolis_corrector", "pidp_loss"]


@dataclass(frozen=True)
class PIDPConfig:
    """Everything a PIDP run does, validated.

    Attributes
    ----------
    steps, batch_size, lr
        Optimiser steps (Adam), collocation states per step, learning rate.
    lr_decay
        ``"cosine"`` (from ``lr`` down to ``lr / 20`` over the run: the final model is not the
        noise of the last steps) or ``"none"``.
    score_weight, value_weight, fpe_weight, tsm_weight, dsm_weight
        Weights of the t = 0 score term, the t = 0 value term, the Fokker–Planck residual,
        target score matching on the buffer (:func:`~.loss.target_score_loss`) and (only when
        data are given) denoising score matching. A term with weight 0 is not computed.
    divergence, probes
        ``"exact"`` (one backward pass per state entry) or ``"hutchinson"`` with ``probes``
        Rademacher probes, for the Laplacian in the residual.
    time_power
        FPE times ``t = t_min + (1 - t_min) u^p`` (p > 1: more points at low noise).
    buffer_size, refresh_every, refresh_fraction
        Replay buffer of collocation states; every ``refresh_every`` steps this fraction is
        replaced by fresh model samples.
    sampler_steps, mala_steps, mala_step_size
        Reverse-SDE steps for the model's samples, then MALA steps on the target (step size h
        in squared state units) before they enter the buffer.
    """

    steps: int = 2000
    batch_size: int = 256
    lr: float = 2e-3
    lr_decay: str = "cosine"
    score_weight: float = 1.0
    value_weight: float = 10.0
    fpe_weight: float = 1.0
    tsm_weight: float = 0.0
    dsm_weight: float = 1.0
    divergence: str = "exact"
    probes: int = 1
    time_power: float = 1.0
    buffer_size: int = 2048
    refresh_every: int = 200
    refresh_fraction: float = 0.25
    sampler_steps: int = 100
    mala_steps: int = 5
    mala_step_size: float = 0.02

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "buffer_size", "refresh_every", "sampler_steps", "probes"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if not isinstance(self.mala_steps, int) or self.mala_steps < 0:
            raise ValueError(f"mala_steps must be an integer >= 0, got {self.mala_steps!r}")
        for name in ("lr", "time_power", "mala_step_size"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)!r}")
        for name in ("score_weight", "value_weight", "fpe_weight", "tsm_weight", "dsm_weight"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)!r}")
        if not 0 < self.refresh_fraction <= 1:
            raise ValueError(f"refresh_fraction must lie in (0, 1], got {self.refresh_fraction!r}")
        if self.lr_decay not in LR_DECAYS:
            raise ValueError(f"lr_decay must be one of {LR_DECAYS}, got {self.lr_decay!r}")
        if self.divergence not in DIVERGENCES:
            raise ValueError(f"divergence must be one of {DIVERGENCES}, got {self.divergence!r}")


@dataclass
class PIDPLoss:
    """The weighted ``loss`` and its unweighted terms (0-d tensors; a term with weight 0 is NaN,
    ``dsm`` is 0 without data), and the target evaluations (energy + gradient) it spent."""

    loss: Tensor
    score: Tensor
    value: Tensor
    fpe: Tensor
    dsm: Tensor
    evaluations: int
    tsm: Tensor = field(default_factory=lambda: torch.tensor(float("nan")))


def pidp_loss(diffusion: Diffusion, log_density: LogDensityFn, x: Tensor, log_target: LogTargetFn,
              config: PIDPConfig = PIDPConfig(), *, data: Tensor | None = None,
              target: tuple[Tensor, Tensor] | None = None, score_scale: float | None = None,
              generator: torch.Generator | None = None) -> PIDPLoss:
    """PIDP objective on collocation states ``x`` (B, *shape).

    Terms, each per state entry (D = entries of one state):
    ``score = mean (grad l(x, 0) - grad log u(x))^2``,
    ``value = Var_batch(l(x, 0) - log u(x)) / D^2``,
    ``fpe = mean (residual(x_t, t) / D)^2`` with x_t ~ p(x_t | x_0 = x) at random t,
    ``tsm`` = :func:`~.loss.target_score_loss` of the model's score on the states x and their
    target scores, and with ``data`` (B', *shape) ``dsm`` = the denoising score-matching loss of
    the model's score. States where the target is not finite are left out of the t = 0 and tsm terms.

    Parameters
    ----------
    target
        ``(log u(x), grad log u(x))`` ((B,), (B, *shape)) if already known (a replay buffer
        stores them): then the target is not evaluated and ``evaluations`` is 0.
    score_scale
        The tsm term's typical score entry; the root mean square of the batch's finite target
        scores if omitted.
    """
    diffusion.space.check(x, "x")
    batch, numel = x.shape[0], diffusion.space.numel
    evaluations = 0
    if target is None:
        logu, grad_u = log_target_and_grad(log_target, x)
        evaluations = batch
    else:
        logu, grad_u = target
    ok = torch.isfinite(logu)
    nan = torch.full((), float("nan"), dtype=x.dtype, device=x.device)
    loss = torch.zeros((), dtype=x.dtype, device=x.device)
    score_term = value_term = fpe_term = tsm_term = nan
    if config.score_weight > 0 or config.value_weight > 0:
        xg = x.detach().requires_grad_(True)
        value0 = log_density(xg, torch.zeros(batch, dtype=x.dtype, device=x.device))
        (score0,) = torch.autograd.grad(value0.sum(), xg, create_graph=True)
        if ok.any():
            score_term = ((score0 - grad_u)[ok] ** 2).mean()
            gap = (value0 - logu)[ok]
            value_term = ((gap - gap.mean()) ** 2).mean() / numel**2
            loss = loss + config.score_weight * score_term + config.value_weight * value_term
    if config.fpe_weight > 0:
        t = diffusion.sample_time(batch, power=config.time_power, generator=generator, device=x.device, dtype=x.dtype)
        xt, _ = diffusion.perturb(x, t, generator=generator)
        residual, _ = log_density_residual(diffusion, log_density, xt, t, divergence=config.divergence,
                                           probes=config.probes, generator=generator)
        fpe_term = ((residual / numel) ** 2).mean()
        loss = loss + config.fpe_weight * fpe_term
    if config.tsm_weight > 0 and ok.any():
        if score_scale is None:
            score_scale = _score_scale(logu, grad_u)
        tsm_term = target_score_loss(diffusion, potential_score(log_density, create_graph=True), x[ok], grad_u[ok],
                                     score_scale=max(score_scale, 1e-6), time_power=config.time_power,
                                     generator=generator).loss
        loss = loss + config.tsm_weight * tsm_term
    dsm_term = torch.zeros((), dtype=x.dtype, device=x.device)
    if data is not None:
        dsm_term = dsm_loss(diffusion, potential_score(log_density, create_graph=True), data,
                            parameterization="score", generator=generator).loss
        loss = loss + config.dsm_weight * dsm_term
    return PIDPLoss(loss=loss, score=score_term.detach(), value=value_term.detach(), fpe=fpe_term.detach(),
                    dsm=dsm_term.detach(), evaluations=evaluations, tsm=tsm_term.detach())


@dataclass
class PIDPHistory:
    """Per-step loss terms (lists of floats; NaN for a term with weight 0), the final buffer
    (N, *shape) and the target evaluations spent (buffer entries, refresh checks and MALA)."""

    loss: list[float] = field(default_factory=list)
    score: list[float] = field(default_factory=list)
    value: list[float] = field(default_factory=list)
    fpe: list[float] = field(default_factory=list)
    tsm: list[float] = field(default_factory=list)
    buffer: Tensor | None = None
    evaluations: int = 0


def _score_scale(logu: Tensor, grad: Tensor) -> float:
    """Root mean square of the finite states' target-score entries (the tsm term's g)."""
    ok = torch.isfinite(logu)
    return float(grad[ok].pow(2).mean().sqrt()) if ok.any() else 1.0


def fit_pidp(diffusion: Diffusion, model: nn.Module, log_target: LogTargetFn, init: Tensor,
             config: PIDPConfig = PIDPConfig(), *, data: Tensor | None = None,
             init_target: tuple[Tensor, Tensor] | None = None, generator: torch.Generator | None = None,
             callback: Callable[[int, PIDPLoss], None] | None = None) -> PIDPHistory:
    """Train a log-density model ``model(x, t) -> (B,)`` by PIDP, in place.

    The replay buffer stores each state with its ``log u`` and ``grad log u``, evaluated once
    when the state enters (counted in :attr:`PIDPHistory.evaluations`); the t = 0 and tsm
    terms reuse them.

    Parameters
    ----------
    init
        (N, *shape) starting collocation states on the model's device and dtype; repeated or
        cut to ``config.buffer_size``.
    data
        Optional clean samples (M, *shape) for the mixed objective (a batch per step).
    init_target
        ``(log u, grad log u)`` at ``init`` if already known (e.g. :attr:`~.mcmc.MALAResult.log_target`
        and ``grad`` of the MALA run that made it): not evaluated, nor counted, again.
    callback
        Called as ``callback(step, loss)`` after every step (progress, logging, checkpoints).
    """
    space = diffusion.space
    space.check(init, "init")
    param = next(model.parameters())
    if init.device != param.device or init.dtype != param.dtype:
        raise ValueError(f"init is {init.dtype} on {init.device}, the model {param.dtype} on {param.device}")
    reps = -(-config.buffer_size // init.shape[0])
    history = PIDPHistory()
    first = init.detach()[: config.buffer_size]
    if init_target is None:
        first_logu, first_grad = log_target_and_grad(log_target, first)
        history.evaluations += first.shape[0]
    else:
        first_logu, first_grad = (v.detach()[: config.buffer_size] for v in init_target)
        if first_logu.shape != first.shape[:1] or first_grad.shape != first.shape:
            raise ValueError(f"init_target must be ((N,), (N, *shape)) for init of shape {tuple(init.shape)}")
    buffer = first.repeat(reps, *([1] * (init.ndim - 1)))[: config.buffer_size].clone()
    buffer_logu = first_logu.repeat(reps)[: config.buffer_size].clone()
    buffer_grad = first_grad.repeat(reps, *([1] * (init.ndim - 1)))[: config.buffer_size].clone()
    scale = _score_scale(buffer_logu, buffer_grad)
    gen_device = generator.device if generator is not None else init.device
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    scheduler = None
    if config.lr_decay == "cosine":
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.steps, eta_min=config.lr / 20)
    score_fn = potential_score(model)
    n_new = max(1, int(round(config.refresh_fraction * config.buffer_size)))
    for step in range(config.steps):
        if step > 0 and step % config.refresh_every == 0:
            model.eval()
            new = sample_sde(diffusion, score_fn, n_new, steps=config.sampler_steps, generator=generator,
                             device=init.device, dtype=init.dtype).x
            new_logu, new_grad = log_target_and_grad(log_target, new)
            history.evaluations += new.shape[0]
            keep = torch.isfinite(new_logu)  # a sample far out may have no finite target
            new, new_logu, new_grad = new[keep], new_logu[keep], new_grad[keep]
            if config.mala_steps and new.shape[0]:
                moved = mala(space, log_target, new, steps=config.mala_steps, step_size=config.mala_step_size,
                             start=(new_logu, new_grad), generator=generator)
                new, new_logu, new_grad = moved.x, moved.log_target, moved.grad
                history.evaluations += moved.evaluations
            slots = torch.randperm(config.buffer_size, generator=generator, device=gen_device)[: new.shape[0]].to(init.device)
            buffer[slots], buffer_logu[slots], buffer_grad[slots] = new, new_logu, new_grad
            scale = _score_scale(buffer_logu, buffer_grad)
            model.train()
        idx = torch.randint(0, config.buffer_size, (config.batch_size,), generator=generator, device=gen_device).to(init.device)
        batch_data = None
        if data is not None:
            pick = torch.randint(0, data.shape[0], (config.batch_size,), generator=generator, device=gen_device)
            batch_data = data[pick.to(data.device)]
        out = pidp_loss(diffusion, model, buffer[idx], log_target, config, data=batch_data,
                        target=(buffer_logu[idx], buffer_grad[idx]), score_scale=scale, generator=generator)
        optimizer.zero_grad(set_to_none=True)
        out.loss.backward()
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
        history.evaluations += out.evaluations
        history.loss.append(float(out.loss.detach()))
        for name in ("score", "value", "fpe", "tsm"):
            getattr(history, name).append(float(getattr(out, name)))
        if callback is not None:
            callback(step, out)
    model.eval()
    history.buffer = buffer
    return history


def metropolis_corrector(space, log_density: LogDensityFn, x: Tensor, *, steps: int, step_size: float = 1e-2,
                         t: float = 0.0, adapt_rate: float = 0.3, generator: torch.Generator | None = None) -> MALAResult:
    """Finish samples ``x`` (B, *shape) by MALA on a log-density model's own ``l(x, t)``.

    The first half of the steps adapts each chain's step size (towards 57 % acceptance, by
    exp(±``adapt_rate``) per step; burn-in),
    the second half runs plain MALA with the adapted sizes, which leaves the model's density at
    time ``t`` exactly invariant. No target evaluations: ``evaluations`` counts model calls.

    Parameters
    ----------
    space
        The diffusion's :class:`~.space.StateSpace`.
    log_density
        The model ``(x, t) -> l`` (B,).
    steps
        MALA steps in all (>= 0).
    step_size
        Starting h, squared state units.
    """
    if not isinstance(steps, int) or steps < 0:
        raise ValueError(f"steps must be an integer >= 0, got {steps!r}")

    def log_model(y: Tensor) -> Tensor:
        return log_density(y, torch.full((y.shape[0],), float(t), dtype=y.dtype, device=y.device))

    burn = mala(space, log_model, x, steps=steps // 2, step_size=step_size, adapt=True, adapt_rate=adapt_rate,
                generator=generator)
    run = mala(space, log_model, burn.x, steps=steps - steps // 2, step_size=burn.step_size, generator=generator)
    return MALAResult(x=run.x, acceptance=run.acceptance, step_size=run.step_size,
                      evaluations=burn.evaluations + run.evaluations, log_target=run.log_target, grad=run.grad)
