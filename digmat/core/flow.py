"""Probability-flow ODE: sampling, encoding to the latent, decoding, and log-densities.

In the variables y (= x/alpha on Euclidean entries, x on periodic ones) and the
noise-to-signal ratio s = sigma_tilde(t) the probability-flow ODE of
:class:`~digmat.core.diffusion.Diffusion` reads

    dy/ds = f(s, y) = -s * kappa(t(s)) * score(x, t(s)),      x = alpha_d * y,

and its divergence in y is  div_y f = -s * sum_d kappa_d alpha_d dscore_d/dx_d.
Liouville's equation d log p_y / ds = -div_y f along a trajectory gives, for a state x
observed at t_min (s_min) and carried to t = 1 (s_max),

    log p_x(x) = log prior(x_1) + n_E [log alpha(1) - log alpha(t_min)]
                 + int_{s_min}^{s_max} div_y f ds,

with n_E the number of Euclidean entries (the Jacobians of y <-> x). The divergence is
computed exactly (one backward pass per state entry) or with Hutchinson's estimator
(K Rademacher probes fixed along the trajectory; the K estimates give a standard error).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from .diffusion import Diffusion, ScoreFn
from .ode import ODEStats, dopri5, euler, heun, karras_grid

__all__ = ["ODEConfig", "FlowResult", "LogProbResult", "sample_ode", "encode", "decode", "log_prob"]

ODE_METHODS = ("heun", "dopri5", "euler")


@dataclass(frozen=True)
class ODEConfig:
    """How to integrate the probability-flow ODE.

    Parameters
    ----------
    method
        ``"heun"`` (fixed grid, 2 evaluations per step), ``"dopri5"`` (adaptive) or ``"euler"``.
    steps
        Steps of the fixed-grid methods (Heun sampling costs 2*steps - 1 evaluations).
    rtol, atol
        Tolerances of ``"dopri5"``.
    rho
        Exponent of the EDM noise grid (larger = denser near the data).
    """

    method: str = "heun"
    steps: int = 25
    rtol: float = 1e-4
    atol: float = 1e-4
    rho: float = 7.0

    def __post_init__(self) -> None:
        if self.method not in ODE_METHODS:
            raise ValueError(f"unknown ODE method {self.method!r}; choose one of {ODE_METHODS}")
        if self.steps < 2:
            raise ValueError(f"steps must be >= 2 (the fixed grid needs two points), got {self.steps}")


@dataclass
class FlowResult:
    """States at the end of an ODE integration.

    ``x`` (B, *shape) are the output states, ``latent`` (B, *shape) the prior-space states
    (t = 1) and ``nfe`` the number of score evaluations per sample.
    """

    x: Tensor
    latent: Tensor
    nfe: int


@dataclass
class LogProbResult:
    """Log-densities from the probability-flow ODE.

    ``log_prob`` (B,) in nats (per unit volume of the state's coordinates); ``stderr`` (B,)
    the Hutchinson standard error (zeros for the exact trace); ``latent`` (B, *shape) the
    encoded states; ``nfe`` score evaluations per sample (each with its backward passes).
    """

    log_prob: Tensor
    stderr: Tensor
    latent: Tensor
    nfe: int


class _FlowField:
    """dy/ds (and optionally the divergence accumulators) as an ODE field over (B, D + K)."""

    def __init__(self, diffusion: Diffusion, score_fn: ScoreFn, divergence: str | None, probes: Tensor | None):
        self.d = diffusion
        self.score_fn = score_fn
        self.divergence = divergence
        self.probes = probes  # (K, B, D)
        self.shape = diffusion.space.shape
        self.numel = diffusion.space.numel

    def __call__(self, s: Tensor, state: Tensor) -> Tensor:
        batch = state.shape[0]
        y = state[:, : self.numel].reshape(batch, *self.shape)
        t = self.d.schedule.t_of_sigma_tilde(s.to(torch.float64)).to(state.dtype).expand(batch)
        kappa = self.d.ode_kappa(t, y)
        alpha_d = self.d.signal_coef(t, y)
        if self.divergence is None:
            with torch.no_grad():
                score = self.score_fn(alpha_d * y, t)
            dy = (-s * kappa * score).reshape(batch, -1)
            return dy
        with torch.enable_grad():
            x = (alpha_d * y).detach().requires_grad_(True)
            score = self.score_fn(x, t)
            weight = (kappa * alpha_d).reshape(batch, -1)
            flat = score.reshape(batch, -1)
            if self.divergence == "exact":
                trace = torch.zeros(batch, 1, dtype=state.dtype, device=state.device)
                for i in range(self.numel):
                    (g,) = torch.autograd.grad(flat[:, i].sum(), x, retain_graph=True)
                    trace[:, 0] += weight[:, i] * g.reshape(batch, -1)[:, i]
            else:
                assert self.probes is not None
                cols = []
                for eps in self.probes:
                    (g,) = torch.autograd.grad((flat * weight * eps).sum(), x, retain_graph=True)
                    cols.append((g.reshape(batch, -1) * eps).sum(-1))
                trace = torch.stack(cols, dim=1)
        div = -s * trace
        dy = (-s * kappa * score.detach()).reshape(batch, -1)
        out = torch.cat([dy, div.detach()], dim=1)
        return out


def _integrate(field: _FlowField, state: Tensor, s_from: float, s_to: float, config: ODEConfig, denoise: bool, error_cols: int) -> tuple[Tensor, ODEStats]:
    """Integrate from noise level s_from to s_to (optionally a final Euler step to s = 0)."""
    stats = ODEStats()
    dtype = torch.float64
    if config.method == "dopri5":
        def in_log_s(u: Tensor, y: Tensor) -> Tensor:  # dy/d(log s) = s dy/ds
            s = torch.exp(u)
            return s * field(s, y)

        mask = torch.zeros(state.shape[1], dtype=torch.bool, device=state.device)
        mask[:error_cols] = True
        state = dopri5(in_log_s, state, math.log(s_from), math.log(s_to), rtol=config.rtol, atol=config.atol, error_mask=mask, stats=stats)
        if denoise:
            state = euler(field, state, torch.tensor([s_to, 0.0], dtype=dtype), stats)
        return state, stats
    decreasing = s_from > s_to
    hi, lo = (s_from, s_to) if decreasing else (s_to, s_from)
    grid = karras_grid(hi, lo, config.steps + (0 if denoise else 1), rho=config.rho)
    if denoise:
        grid = torch.cat([grid, torch.zeros(1, dtype=dtype)])
    if not decreasing:
        grid = grid.flip(0)
    step = heun if config.method == "heun" else euler
    return step(field, state, grid, stats), stats


def _to_y(diffusion: Diffusion, x: Tensor, t: float) -> Tensor:
    tt = torch.full((x.shape[0],), t, dtype=x.dtype, device=x.device)
    return x / diffusion.signal_coef(tt, x)


def _to_x(diffusion: Diffusion, y: Tensor, t: float) -> Tensor:
    tt = torch.full((y.shape[0],), t, dtype=y.dtype, device=y.device)
    return diffusion.space.wrap(y * diffusion.signal_coef(tt, y))


def decode(diffusion: Diffusion, score_fn: ScoreFn, latent: Tensor, config: ODEConfig = ODEConfig(), *, denoise: bool = True) -> FlowResult:
    """Map prior-space states (t = 1) to data by integrating the ODE down to t_min (and s = 0 if ``denoise``)."""
    space = diffusion.space
    space.check(latent, "latent")
    s_max, s_min = diffusion.schedule.ode_range()
    y = _to_y(diffusion, latent, 1.0).reshape(latent.shape[0], -1)
    field = _FlowField(diffusion, score_fn, None, None)
    y, stats = _integrate(field, y, s_max, s_min, config, denoise, y.shape[1])
    t_end = 0.0 if denoise else diffusion.schedule.t_min
    x = _to_x(diffusion, y.reshape(latent.shape), t_end)
    return FlowResult(x=x, latent=latent, nfe=stats.nfe)


def sample_ode(
    diffusion: Diffusion,
    score_fn: ScoreFn,
    num: int,
    config: ODEConfig = ODEConfig(),
    *,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
    denoise: bool = True,
) -> FlowResult:
    """Draw ``num`` i.i.d. samples by decoding prior draws with the probability-flow ODE."""
    latent = diffusion.space.sample_prior(num, generator=generator, device=device, dtype=dtype)
    return decode(diffusion, score_fn, latent, config, denoise=denoise)


def encode(diffusion: Diffusion, score_fn: ScoreFn, x: Tensor, config: ODEConfig = ODEConfig()) -> FlowResult:
    """Map data states (taken at t_min) to their prior-space latents at t = 1."""
    return _encode(diffusion, score_fn, x, config, divergence=None, probes=0, probe="gaussian", generator=None)[0]


def log_prob(
    diffusion: Diffusion,
    score_fn: ScoreFn,
    x: Tensor,
    config: ODEConfig = ODEConfig(method="dopri5", rtol=1e-5, atol=1e-5),
    *,
    divergence: str = "auto",
    probes: int = 8,
    probe: str = "rademacher",
    exact_max_dim: int = 32,
    generator: torch.Generator | None = None,
) -> LogProbResult:
    """log p(x) of states ``x`` (B, *shape) under the model, by the probability-flow ODE.

    Parameters
    ----------
    divergence
        ``"exact"`` (one backward pass per state entry per evaluation), ``"hutchinson"``
        (``probes`` random probes, with a standard error), or ``"auto"``: exact when the
        state has at most ``exact_max_dim`` entries.
    probe
        ``"rademacher"`` (default; lowest variance: the diagonal of the Jacobian is counted
        exactly, only off-diagonal terms add noise) or ``"gaussian"``. The standard error
        covers the estimator only; the ODE's own discretisation error is set by ``config``.
    """
    if divergence == "auto":
        divergence = "exact" if diffusion.space.numel <= exact_max_dim else "hutchinson"
    if divergence not in ("exact", "hutchinson"):
        raise ValueError(f"divergence must be 'exact', 'hutchinson' or 'auto', got {divergence!r}")
    if probe not in ("gaussian", "rademacher"):
        raise ValueError(f"probe must be 'gaussian' or 'rademacher', got {probe!r}")
    if divergence == "hutchinson" and probes < 2:
        raise ValueError("Hutchinson's estimator needs probes >= 2 to report a standard error")
    result, acc = _encode(diffusion, score_fn, x, config, divergence=divergence, probes=probes, probe=probe, generator=generator)
    n_e = diffusion.space.num_euclidean
    base = diffusion.space.prior_log_prob(result.latent) + n_e * diffusion.schedule.log_alpha_drop()
    estimates = base.unsqueeze(1) + acc  # (B, K)
    mean = estimates.mean(1)
    if estimates.shape[1] > 1:
        stderr = estimates.std(1) / math.sqrt(estimates.shape[1])
    else:
        stderr = torch.zeros_like(mean)
    return LogProbResult(log_prob=mean, stderr=stderr, latent=result.latent, nfe=result.nfe)


def _encode(diffusion, score_fn, x, config, *, divergence, probes, probe, generator) -> tuple[FlowResult, Tensor]:
    space = diffusion.space
    space.check(x, "x")
    batch = x.shape[0]
    s_max, s_min = diffusion.schedule.ode_range()
    y = _to_y(diffusion, space.wrap(x), diffusion.schedule.t_min).reshape(batch, -1)
    probe_tensor = None
    k = 0
    if divergence == "exact":
        k = 1
    elif divergence == "hutchinson":
        k = probes
        gen_device = generator.device if generator is not None else x.device
        size = (probes, batch, space.numel)
        if probe == "gaussian":
            probe_tensor = torch.randn(size, generator=generator, device=gen_device, dtype=x.dtype).to(x.device)
        else:
            probe_tensor = (torch.randint(0, 2, size, generator=generator, device=gen_device) * 2 - 1).to(x)
    state = torch.cat([y, torch.zeros(batch, k, dtype=x.dtype, device=x.device)], dim=1)
    field = _FlowField(diffusion, score_fn, divergence, probe_tensor)
    state, stats = _integrate(field, state, s_min, s_max, config, False, space.numel)
    latent = _to_x(diffusion, state[:, : space.numel].reshape(x.shape), 1.0)
    return FlowResult(x=x, latent=latent, nfe=stats.nfe), state[:, space.numel :]


