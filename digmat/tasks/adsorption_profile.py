"""Where an adsorption model loses the reference's site populations: the Bayes-optimal denoiser.

The models are trained on exact draws of a reference search's harmonic distribution (the minima's
basins mixed with their Boltzmann weights, :func:`~digmat.adsorption.sample_equilibrium`). The
best any denoiser can do on that distribution is its posterior mean; for the empirical
distribution of N exact draws {x_k} (narrow components of a
:class:`~digmat.core.analytic.ProductMixture`) it is exact at every noise level:

    E[ε | x_t] = Σ_k π_k(x_t) ε_k(x_t),   π_k ∝ p_t(x_t | x_k),

with the wrapped-normal series on the in-plane (torus) entries. This *oracle* gives two
measurements of a model:

- :func:`denoising_profile` — the model's and the oracle's noise-prediction errors per noise
  level, in-plane (anchor u, v), height and internal (other adsorbate atoms) entries. Where the
  model sits above the oracle it has something left to learn; the oracle's own error is the
  floor of the training loss.
- :func:`switched_populations` — site-kind populations of samples drawn with the oracle's score
  above a switch time and the model's below, and the reverse: which noise range moves the
  populations away from the reference (the oracle alone reproduces them; tested).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from digmat.core import SampleConfig, ScoreFn
from digmat.core.analytic import ProductMixture
from digmat.tasks.sampling import DEFAULT_STEPS, site_kind_populations, summarise_sites

__all__ = ["denoising_profile", "reference_oracle", "site_kind_shares", "switched_populations", "switched_score"]


def reference_oracle(system, diffusion, result, temperature: float, *, num: int = 4096, seed: int = 0,
                     width: float = 2e-3) -> ProductMixture:
    """The exact score of ``num`` exact draws of ``result``'s harmonic distribution at ``temperature`` (K).

    Each draw becomes a component of width ``width`` (state units) — the empirical distribution;
    its denoiser is the Bayes-optimal one for that sample at every noise level where the draws
    overlap (σ above the draws' spacing, about 0.1 Å for 4096 draws of one adsorbate atom).
    """
    from digmat.adsorption import sample_equilibrium

    pool = system.to_state(sample_equilibrium(result, temperature, num, seed=seed))
    return ProductMixture(diffusion, torch.ones(len(pool), dtype=torch.float64), pool, torch.full_like(pool, width))


def switched_score(high: ScoreFn, low: ScoreFn, t_switch: float) -> ScoreFn:
    """A score that is ``high`` at t ≥ ``t_switch`` and ``low`` below (t is one value per call, as
    the samplers call it)."""

    def score(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        value = float(torch.as_tensor(t).reshape(-1)[0])
        return high(x, t) if value >= t_switch else low(x, t)

    return score


def _as_score(mixture: ProductMixture) -> ScoreFn:
    return lambda x, t: mixture.score(x.double(), t).to(x.dtype)


def site_kind_shares(system, states: torch.Tensor) -> dict[str, float]:
    """``{site kind: share}`` of states (S, D), by the site assigner ``digmat adsorb`` reports with."""
    sites, _ = summarise_sites(system.slab, system.to_atoms(states), system.num_slab + system.anchor, bootstrap=1)
    return site_kind_populations(sites)


def switched_populations(model, system, oracle: ProductMixture, temperature: float, switches: Sequence[float], *,
                         num: int = 256, seed: int = 0, sampler: SampleConfig | None = None) -> dict:
    """Site-kind shares of ``num`` samples drawn with the model alone, the oracle alone, and for each
    switch time t_s: oracle above t_s and model below (``oracle_high``), and model above and
    oracle below (``model_high``). Same noise seed for every variant.

    Parameters
    ----------
    model
        An :class:`~digmat.models.AdsorptionScoreModel`.
    system
        The :class:`~digmat.systems.AdsorbateSystem` of the reference.
    oracle
        :func:`reference_oracle` of the same reference at ``temperature``.
    temperature
        K (the model's condition).
    switches
        Switch times t_s in [0, 1].
    num, seed, sampler
        Samples per variant, their noise seed, and the sampler (default: the adsorption ODE).

    Returns
    -------
    ``{"model": shares, "oracle": shares, "oracle_high": {t_s: shares}, "model_high": {t_s: shares}}``
    with shares ``{site kind: share}``.
    """
    config = (sampler or SampleConfig()).sampler_config(DEFAULT_STEPS, "ode")
    model_score, oracle_score = model.score_fn(system, float(temperature)), _as_score(oracle)
    diffusion = system.diffusion(model.config.schedule)
    dtype = next(model.parameters()).dtype

    def shares(fn: ScoreFn) -> dict[str, float]:
        with torch.no_grad():
            x, _ = config.sample(diffusion, fn, num, generator=torch.Generator().manual_seed(seed), dtype=dtype)
        return site_kind_shares(system, x)

    out = {"model": shares(model_score), "oracle": shares(oracle_score), "oracle_high": {}, "model_high": {}}
    for t_s in switches:
        out["oracle_high"][float(t_s)] = shares(switched_score(oracle_score, model_score, t_s))
        out["model_high"][float(t_s)] = shares(switched_score(model_score, oracle_score, t_s))
    return out


def denoising_profile(model, system, oracle: ProductMixture, data: torch.Tensor, temperature: float, times: Sequence[float], *,
                      seed: int = 0) -> list[dict]:
    """Per time in ``times``: the height entry's noise σ (Å) and the mean squared noise-prediction
    error per entry of the model and of the oracle, in-plane / height / internal, on ``data``
    (S, D) exact draws noised (best drawn independently of the oracle's pool).

    The target is the training target: ε on Euclidean entries, −σ × the wrapped normal's score on
    the torus (the unwrapped noise's conditional mean).
    """
    diffusion = system.diffusion(model.config.schedule)
    score = model.score_fn(system, float(temperature))
    dtype = next(model.parameters()).dtype
    gen = torch.Generator().manual_seed(seed)
    data = data.double()
    blocks = {"in_plane": slice(0, 2), "height": slice(2, 3), "internal": slice(3, None)}
    rows = []
    for t_value in times:
        t = torch.full((len(data),), float(t_value), dtype=torch.float64)
        noisy, _ = diffusion.perturb(data, t, generator=gen)
        target = diffusion.score_to_eps(diffusion.conditional_score(noisy, data, t), t)
        with torch.no_grad():
            pred = diffusion.score_to_eps(score(noisy.to(dtype), t.to(dtype)).double(), t)
        best = diffusion.score_to_eps(oracle.score(noisy, t), t)
        sigma = diffusion.noise_std(t[:1], data[:1]).expand(1, data.shape[1])[0, 2] * system.config.length_scale
        row = {"t": float(t_value), "sigma_A": round(float(sigma), 4)}
        for who, eps in (("model", pred), ("oracle", best)):
            err = (eps - target) ** 2
            row[who] = {name: round(float(err[:, sl].mean()), 4) for name, sl in blocks.items() if err[:, sl].numel()}
        rows.append(row)
    return rows
