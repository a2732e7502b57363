"""Crystal generation with a :class:`~digmat.models.CrystalScoreModel`, unguided or band-gap guided.

Guidance (Bayes' rule on the noisy state x_t, scale lambda):

    grad log p_t(x | c) = grad log p_t(x) + lambda grad_x log p(c | x_t),
    p(c | x_t) = N(c; f(R(x0_hat)), w_t^2),   w_t^2 = w^2 + sum_d r_d^2 (df/dx0_d)^2,

with f the band-gap predictor (eV), R(x0) the crystal (positions and lattice) of Tweedie's
denoised state x0_hat = (x_t + std^2 s(x_t, t)) / alpha and r_d^2 = u_d^2 / (1 + u_d^2),
u_d = std_d / alpha_d (see :func:`digmat.core.gaussian_property_likelihood`). The gradient
reaches every entry of the state — fractional coordinates *and* lattice — through
R(x0) = (f exp(S), exp(S)).

Jacobian of the denoiser. Backpropagating through the score network at every step would
double the cost; holding the score fixed instead gives d x0_hat / d x_t = 1/alpha, which is
wrong by a factor ~1/alpha^2 at high noise (for unit-variance Gaussian data the exact slope is
alpha: x_t then says little about x_0) and throws the lattice out of range. We use the
Jacobian of the same unit-variance Gaussian model that sets r_d above,

    d x0_hat_d / d x_t,d = 1 / (alpha_d (1 + u_d^2)),

exact for standardised Gaussian data, -> 1/alpha at low noise and -> 0 at high noise. A guided
step costs one score evaluation plus one predictor forward/backward pass. Before the predictor
sees x0_hat, its lattice entries are clipped to +-``lattice_clip`` (state units) so that early,
poorly denoised estimates stay physical cells.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from ase import Atoms
from torch import Tensor

from digmat.core import LangevinCorrector, SampleConfig, SamplerConfig, ScoreFn, gaussian_property_likelihood, guided_score, resample_sde
from digmat.models.crystal import CrystalModelConfig, CrystalScoreModel
from digmat.models.crystal_training import CrystalDataset, collate_crystals, crystal_dsm_loss
from digmat.systems.crystal import CrystalStateConfig, CrystalSystem

__all__ = ["DEFAULT_CORRECTOR", "DEFAULT_GRID_POWER", "DEFAULT_STEPS", "GapGuidance", "SampleConfig", "SamplerConfig", "crystal_corrector", "crystal_sampler", "gap_function", "restart_crystals", "sample_crystals",
           "train_crystal_model"]

DEFAULT_STEPS = {"sde": 200, "ode": 25}
"""Default steps per sampler for crystals: DiG's ancestral SDE, 200 steps, is the default (the
probability-flow ODE merges atoms: validity 0.15)."""

DEFAULT_GRID_POWER = 3.0
DEFAULT_CORRECTOR = {"moves": 5, "snr": 0.2, "below": 0.3}
"""The default crystal sampler's grid and Langevin corrector (:func:`crystal_sampler`)."""


def crystal_sampler(model: CrystalScoreModel, method: str = "sde", steps: int | None = None, *, grid_power: float | None = None,
                    corrector: int | None = None, snr: float | None = None, correct_below: float | None = None) -> SamplerConfig:
    """A crystal sampler with the measured defaults for whatever is not given.

    The default is the SDE with 200 steps on the grid t = u^3 and 5 Langevin moves (``snr``
    0.2) after every step below ``correct_below`` = 0.3 Å of positional noise; the ODE takes
    :data:`DEFAULT_STEPS` grid points and no grid power or corrector. On the shipped ``carbon24``
    (100 samples, ``recipes/bench_crystal_sampler.py``, docs/carbon.md §4) the default raised the
    10 % nearest-neighbour distance from 1.13 Å (DiG's uniform grid, no corrector) to 1.28 Å
    (training set 1.37 Å) at 2.5× the time per sample, validity 1.00.

    Parameters
    ----------
    method : {"sde", "ode"}
    steps : int or None
        Steps (SDE) or grid points (ODE); None: :data:`DEFAULT_STEPS`.
    grid_power : float or None
        SDE step grid t = u^p; None: 3 for the SDE, 1 for the ODE.
    corrector : int or None
        Langevin moves per step (:func:`crystal_corrector`); None: 5 for the SDE, 0 for the ODE.
    snr, correct_below : float or None
        The corrector's signal-to-noise ratio and noise bound (Å); None: :data:`DEFAULT_CORRECTOR`.
    """
    sde = method == "sde"
    if corrector and not sde:
        raise ValueError("the Langevin corrector applies to the SDE sampler only")
    grid_power = grid_power if grid_power is not None else (DEFAULT_GRID_POWER if sde else 1.0)
    moves = corrector if corrector is not None else (DEFAULT_CORRECTOR["moves"] if sde else 0)
    return SamplerConfig(method, steps if steps is not None else DEFAULT_STEPS.get(method, 1), grid_power,
                         corrector=crystal_corrector(model, moves, snr, correct_below))


def crystal_corrector(model: CrystalScoreModel, moves: int, snr: float | None = None, below: float | None = None) -> LangevinCorrector | None:
    """A Langevin corrector for ``model``'s SDE in the crystal's own units.

    ``moves`` Langevin moves (signal-to-noise ratio ``snr``) after every step that lands where
    the positional noise is at most ``below`` Å, where a crystal's bonds are set; ``None`` for
    ``moves = 0``. ``snr`` and ``below`` default to :data:`DEFAULT_CORRECTOR`'s. See
    :class:`~digmat.core.LangevinCorrector`.
    """
    snr = DEFAULT_CORRECTOR["snr"] if snr is None else snr
    below = DEFAULT_CORRECTOR["below"] if below is None else below
    if not below > 0:
        raise ValueError(f"the corrector's noise bound must be > 0 Å, got {below}")
    if moves == 0:
        return None
    return LangevinCorrector(moves, snr, min(float(model.time_of_noise(below)), 1.0))


@dataclass(frozen=True)
class GapGuidance:
    """Target band gap and likelihood.

    Parameters
    ----------
    target
        c, the band gap asked for, eV.
    width
        w, the likelihood's standard deviation at t = 0, eV (the predictor's error scale).
    scale
        lambda (1 = Bayes posterior p(x | c); > 1 sharpens).
    lattice_clip
        Lattice entries of x0_hat are clipped to [-clip, clip] before prediction (state units).
    max_noise
        Guide only where the positional noise is at most this many Å (``None``: at every
        noise level). The predictor is trained on relaxed cells; at high noise its input,
        the denoised estimate, is a blurred average it has never seen, so its gradient there
        is least trustworthy. Guided steps also cost a predictor backward pass, so this saves
        time.
    """

    target: float
    width: float = 0.5
    scale: float = 1.0
    lattice_clip: float = 4.0
    max_noise: float | None = None

    def __post_init__(self) -> None:
        if not math.isfinite(self.target):
            raise ValueError(f"target must be finite, got {self.target}")
        if not (self.width > 0 and self.scale >= 0 and self.lattice_clip > 0):
            raise ValueError("width and lattice_clip must be > 0 and scale >= 0")
        if self.max_noise is not None and not (math.isfinite(self.max_noise) and self.max_noise > 0):
            raise ValueError(f"max_noise must be a positive number of Å or None, got {self.max_noise}")


class _ScoreCache:
    """The score of the last (x, t) seen, without gradients: the guided step evaluates it once."""

    def __init__(self, fn: ScoreFn):
        self.fn = fn
        self.key: tuple[Tensor, Tensor] | None = None
        self.value: Tensor | None = None

    def __call__(self, x: Tensor, t: Tensor) -> Tensor:
        x = x.detach()
        if self.key is not None and self.key[0].shape == x.shape and torch.equal(self.key[0], x) and torch.equal(self.key[1], t):
            return self.value
        with torch.no_grad():
            self.value = self.fn(x, t)
        self.key = (x.clone(), t.clone())
        return self.value


def _surrogate_jacobian_score(cache: _ScoreCache, diffusion) -> ScoreFn:
    """The cached score's value with the Jacobian of unit-variance Gaussian data,
    d s / d x = -u^2 / ((1 + u^2) std^2), so that d x0_hat / d x = 1 / (alpha (1 + u^2))."""

    def score(x: Tensor, t: Tensor) -> Tensor:
        std, alpha = diffusion.noise_std(t, x), diffusion.signal_coef(t, x)
        u2 = (std / alpha) ** 2
        return cache(x, t) - u2 / ((1 + u2) * std**2) * (x - x.detach())

    return score


def gap_function(predictor, system: CrystalSystem, lattice_clip: float = 4.0):
    """f(states (B, D)) -> predicted gaps (B,) in eV, differentiable in all state entries."""
    n3 = 3 * system.num_atoms

    def f(x0: Tensor) -> Tensor:
        x0 = torch.cat([x0[:, :n3], x0[:, n3:].clamp(-lattice_clip, lattice_clip)], dim=1)
        pos, cell = system.structure(x0)
        return predictor.predict(pos, cell, system.numbers).to(x0.dtype)

    return f


def _score(model: CrystalScoreModel, system: CrystalSystem, predictor, guidance: GapGuidance | None) -> ScoreFn:
    base = _ScoreCache(model.score_fn(system))
    if guidance is None:
        return base
    if predictor is None:
        raise ValueError("guided sampling needs a band-gap predictor")
    diffusion = system.diffusion(model.config.schedule)
    likelihood = gaussian_property_likelihood(gap_function(predictor, system, guidance.lattice_clip), guidance.target, guidance.width,
                                              diffusion=diffusion, score_fn=_surrogate_jacobian_score(base, diffusion), on="denoised")
    guided = guided_score(base, likelihood, guidance.scale)
    if guidance.max_noise is None:
        return guided
    t_max = float(model.time_of_noise(guidance.max_noise))

    def score(x: Tensor, t: Tensor) -> Tensor:
        low = t <= t_max
        if not bool(low.any()):
            return base(x, t)
        out = guided(x, t)
        return out if bool(low.all()) else torch.where(low[:, None], out, base(x, t))

    return score


def sample_crystals(
    model: CrystalScoreModel,
    num: int,
    config: SampleConfig | None = None,
    *,
    num_atoms: int | Sequence[int] | None = None,
    element: str | None = None,
    predictor=None,
    guidance: GapGuidance | None = None,
    dtype: torch.dtype = torch.float32,
    **sampling: Any,
) -> list[Atoms]:
    """Generate ``num`` crystals.

    Parameters
    ----------
    model
        Trained crystal score model (eval mode; EMA weights).
    num_atoms
        Atoms per cell: one int for all, one per sample, or None to draw from the training
        distribution (``model.config.num_atoms``).
    element
        Chemical symbol of the (single-element) crystals; default: the model's only element.
    predictor, guidance
        Band-gap predictor (:class:`~digmat.design.predictor.BandGapPredictor`) and the target;
        ``guidance=None`` samples unguided.
    config, sampling
        How to sample (:class:`~digmat.core.SampleConfig`: sampler, steps, seed, device,
        batch size, progress bar), or the same settings as keywords
        (``sampler=SamplerConfig("sde", 200)``, ``seed=0``). The default sampler is
        :func:`crystal_sampler` (DiG's ancestral SDE, denser at low noise, with Langevin
        corrector moves); ``sampler="sde"`` is DiG's plain chain with :data:`DEFAULT_STEPS` steps
        (the ODE merges atoms: validity 0.15).

    Returns
    -------
    list of ase.Atoms (in draw order), ``info``: ``num_atoms``, ``sample_index``.
    """
    from ase.data import atomic_numbers
    from tqdm.auto import tqdm

    run = SampleConfig.build(config, **sampling)
    sampler = crystal_sampler(model, "sde", run.steps) if run.sampler is None else run.sampler_config(DEFAULT_STEPS, "sde")
    seed, batch_size, progress = run.seed, run.batch_size, run.progress
    if num < 1:
        raise ValueError(f"num must be >= 1, got {num}")
    run.model_device(model)
    if element is None:
        if len(model.config.elements) != 1:
            raise ValueError(f"give the element (the model knows {model.config.elements or 'any'})")
        element = model.config.elements[0]
    if element not in atomic_numbers:
        raise ValueError(f"unknown element {element!r}")
    generator = torch.Generator().manual_seed(seed)
    if num_atoms is None:
        sizes = model.draw_num_atoms(num, generator=generator)
    elif isinstance(num_atoms, int):
        sizes = [num_atoms] * num
    else:
        sizes = [int(n) for n in num_atoms]
        if len(sizes) != num:
            raise ValueError(f"num_atoms has {len(sizes)} entries for {num} samples")
    if min(sizes) < 1:
        raise ValueError("every crystal needs at least one atom")
    param = next(model.parameters())
    model.eval()
    out: list[Atoms | None] = [None] * num
    jobs = [(n, idx[i : i + batch_size]) for n in sorted(set(sizes)) for idx in [[k for k, s in enumerate(sizes) if s == n]] for i in range(0, len(idx), batch_size)]
    for n, idx in tqdm(jobs, disable=not progress, desc="sampling"):
        system = model.system([atomic_numbers[element]] * n)
        diffusion = system.diffusion(model.config.schedule)
        score = _score(model, system, predictor, guidance)
        x, _ = sampler.sample(diffusion, score, len(idx), generator=generator, device=param.device, dtype=dtype)
        for k, atoms in zip(idx, system.to_atoms(x)):
            atoms.info.update(num_atoms=n, sample_index=k)
            out[k] = atoms
    return out  # type: ignore[return-value]


def restart_crystals(model: CrystalScoreModel, structures: Sequence[Atoms], noise: float, *, steps: int = DEFAULT_STEPS["sde"],
                     repeats: int = 1, seed: int = 0) -> list[Atoms]:
    """Noise ``structures`` to ``noise`` Å of positional noise and denoise them with the model's
    reverse SDE (:func:`digmat.core.resample_sde`, the ``steps``-step grid of
    :func:`sample_crystals`).

    A model whose score is right below ``noise`` returns crystals as well formed as its inputs
    (bond lengths, symmetry); the smallest ``noise`` at which they degrade is where the model,
    not the sampler, loses the structure. Returns ``len(structures) * repeats`` crystals, each
    input's ``repeats`` copies together, ``info["restart_of"]`` = its index.
    """
    if not noise > 0 or repeats < 1:
        raise ValueError(f"noise must be > 0 Å and repeats >= 1, got {noise}, {repeats}")
    model.eval()
    param = next(model.parameters())
    t_start = float(model.time_of_noise(noise))
    generator = torch.Generator().manual_seed(seed)
    out: list[Atoms] = []
    for k, atoms in enumerate(structures):
        system = model.system(atoms.numbers.tolist())
        x0 = system.to_state(atoms, dtype=param.dtype).to(param.device).expand(repeats, -1).clone()
        x = resample_sde(system.diffusion(model.config.schedule), model.score_fn(system), x0, min(t_start, 1.0), steps=steps, generator=generator).x
        for new in system.to_atoms(x):
            new.info["restart_of"] = k
            out.append(new)
    return out


def train_crystal_model(
    structures: Sequence[Atoms],
    out_dir,
    *,
    config: CrystalModelConfig | None = None,
    train_config=None,
    metadata: dict[str, Any] | None = None,
    init: CrystalScoreModel | None = None,
    progress: bool = False,
) -> tuple[CrystalScoreModel, dict[str, Any]]:
    """Fit a crystal score model on ``structures`` with :class:`digmat.train.Trainer`.

    The state convention (``config.state``) is fitted to the data when ``config`` is None or
    carries the default :class:`CrystalStateConfig`; elements and the atom-count distribution
    are filled in from the data. ``init`` (a trained model with the same network and state
    convention) warm-starts the weights and their EMA: fine-tuning, or more steps on a new
    learning-rate schedule. Writes ``out_dir/model.pt`` (+ ``checkpoint.pt``, ``log.jsonl``).
    Returns the model with its EMA weights loaded and the last log record.
    """
    from dataclasses import replace

    from ase.data import chemical_symbols

    from digmat.train import TrainConfig, Trainer

    if len(structures) == 0:
        raise ValueError("no training structures")
    config = config or (init.config if init is not None else CrystalModelConfig())
    if config.state == CrystalStateConfig():
        config = replace(config, state=CrystalStateConfig.fit(structures))
    data = CrystalDataset(structures, config.state)
    elements = sorted({chemical_symbols[int(z)] for a in structures for z in a.numbers})
    config = replace(config, elements=tuple(elements), num_atoms=data.num_atoms_histogram())
    model = CrystalScoreModel(config)
    if init is not None:
        if (init.config.network, init.config.state) != (config.network, config.state):
            raise ValueError("init has another network or state convention than config; it cannot warm-start this model")
        model.load_state_dict(init.state_dict())
    trainer = Trainer(model, crystal_dsm_loss, data, collate_crystals, train_config or TrainConfig(), out_dir,
                      model_config=config.to_dict(), metadata={"kind": "crystal", "n_train": len(data), **(metadata or {})}, progress=progress)
    last = trainer.fit()
    model.load_state_dict(trainer.ema.state_dict())
    return model.eval(), last

