"""One sampling configuration for every model family: which sampler, how many steps, which grid.

``SamplerConfig("sde", 200)`` is DiG's ancestral reverse chain (``steps`` network evaluations,
step grid ``t = u^grid_power``); ``SamplerConfig("ode", 25)`` the probability-flow ODE with
Heun's method on the EDM grid (``2 steps - 1`` evaluations).  Each model family states its
measured default (adsorbates: ODE, 25 steps — coverage 1.00 on held-out surfaces where SDE-50
reached 0.93; crystals: SDE, 200 steps — the ODE merges atoms, validity 0.15).

:class:`SampleConfig` adds what every sampling call also needs — seed, device, batch size,
progress bar — so that ``sample_adsorbates`` and ``sample_crystals`` take one config and the
same flat keywords, validated in one place.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

import torch
from torch import Tensor

from .diffusion import Diffusion, ScoreFn
from .flow import ODEConfig, sample_ode
from .schedule import NoiseSchedule
from .sde import LangevinCorrector, sample_sde

__all__ = ["SAMPLERS", "SampleConfig", "SamplerConfig"]

SAMPLERS = ("sde", "ode")


@dataclass(frozen=True)
class SamplerConfig:
    """Sampler, steps and step grid, validated once.

    Attributes
    ----------
    method : {"sde", "ode"}
        Reverse SDE or probability-flow ODE (Heun).
    steps : int
        SDE: steps (= network evaluations), >= 1; ODE: grid points, >= 2.
    grid_power : float
        SDE step grid ``t = u^p`` (p > 1: more steps at low noise); the ODE uses the EDM grid,
        so it must stay 1 there.
    corrector : LangevinCorrector or None
        SDE only: Langevin moves after the ancestral steps (Song et al.'s predictor–corrector
        sampler); ``None``: DiG's plain chain.
    """

    method: str = "sde"
    steps: int = 200
    grid_power: float = 1.0
    corrector: LangevinCorrector | None = None

    def __post_init__(self) -> None:
        if self.method not in SAMPLERS:
            raise ValueError(f"sampler must be one of {SAMPLERS}, got {self.method!r}")
        if not isinstance(self.steps, int) or self.steps < (2 if self.method == "ode" else 1):
            need = 2 if self.method == "ode" else 1
            raise ValueError(f"the {self.method} sampler needs steps >= {need}, got {self.steps!r}")
        if not self.grid_power > 0 or (self.method == "ode" and self.grid_power != 1.0):
            raise ValueError(f"grid_power must be > 0 and applies to the SDE only, got {self.grid_power} with {self.method!r}")
        if self.corrector is not None and (self.method != "sde" or not isinstance(self.corrector, LangevinCorrector)):
            raise ValueError(f"a corrector must be a LangevinCorrector and applies to the SDE only, got {self.corrector!r} with {self.method!r}")

    @property
    def evaluations(self) -> int:
        """Network evaluations per sample (corrector moves counted on DiG's default schedule;
        :meth:`sample` returns the count on the diffusion's own)."""
        if self.method == "ode":
            return 2 * self.steps - 1
        if self.corrector is None:
            return self.steps
        return self.steps + self.corrector.evaluations(NoiseSchedule().discretize(self.steps, power=self.grid_power)["t"], self.steps)

    def sample(self, diffusion: Diffusion, score_fn: ScoreFn, num: int, *, generator: torch.Generator | None = None,
               device: torch.device | str | None = None, dtype: torch.dtype = torch.float32) -> tuple[Tensor, int]:
        """Draw ``num`` states; returns ``(states (num, *shape), network evaluations)``."""
        if self.method == "sde":
            out = sample_sde(diffusion, score_fn, num, steps=self.steps, grid_power=self.grid_power, corrector=self.corrector,
                             generator=generator, device=device, dtype=dtype)
        else:
            out = sample_ode(diffusion, score_fn, num, ODEConfig("heun", steps=self.steps),
                             generator=generator, device=device, dtype=dtype)
        return out.x, out.nfe


@dataclass(frozen=True)
class SampleConfig:
    """How samples are drawn, for every system kind: sampler, seed, device, batching.

    Attributes
    ----------
    sampler : SamplerConfig, {"sde", "ode"} or None
        The sampler; a name takes the system kind's default steps unless ``steps`` is given;
        ``None`` is the system kind's measured default (see the module docstring).
    steps : int or None
        Steps for a sampler given by name.
    seed : int
        Seed of the prior draws and of the SDE noise, >= 0. Same seed, same samples.
    device : str or None
        Torch device the model runs on (``"cpu"``, ``"cuda"``, ``"cuda:1"``); ``None``: the
        given model's own device (a model loaded by name goes to the CPU).
    batch_size : int
        Samples per network pass, >= 1 (memory, not results).
    progress : bool
        Show a progress bar.
    """

    sampler: SamplerConfig | str | None = None
    steps: int | None = None
    seed: int = 0
    device: str | None = None
    batch_size: int = 128
    progress: bool = False

    def __post_init__(self) -> None:
        if isinstance(self.sampler, SamplerConfig):
            if self.steps is not None:
                raise ValueError("give the steps inside the SamplerConfig")
        elif self.sampler is not None and self.sampler not in SAMPLERS:
            raise ValueError(f"sampler must be one of {SAMPLERS} or a SamplerConfig, got {self.sampler!r}")
        if self.steps is not None and (isinstance(self.steps, bool) or not isinstance(self.steps, int)):
            raise ValueError(f"steps must be an integer, got {self.steps!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"seed must be an integer >= 0, got {self.seed!r}")
        if isinstance(self.batch_size, bool) or not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise ValueError(f"batch_size must be an integer >= 1, got {self.batch_size!r}")
        try:
            if self.device is not None:
                torch.device(self.device)
        except (RuntimeError, TypeError) as err:
            raise ValueError(f"not a torch device: {self.device!r}") from err

    @classmethod
    def build(cls, config: SampleConfig | None = None, **overrides: Any) -> SampleConfig:
        """``config`` (default: all defaults) with the flat keywords ``overrides`` applied.

        Lets functions take ``config=SampleConfig(...)`` or the same settings as keywords
        (``seed=3, sampler="sde"``); an unknown keyword is an error naming the known ones.
        """
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise TypeError(f"unknown sampling option(s) {unknown}; known: {sorted(known)}")
        base = config if config is not None else cls()
        if "sampler" in overrides and "steps" not in overrides and isinstance(overrides["sampler"], SamplerConfig):
            overrides["steps"] = None
        if overrides.get("device") is not None and not isinstance(overrides["device"], str):
            overrides["device"] = str(overrides["device"])
        return replace(base, **overrides) if overrides else base

    def model_device(self, model: torch.nn.Module) -> torch.device:
        """The device to sample on: the model's own; an error if ``device`` asks for another
        (the model is not moved behind the caller's back)."""
        here = next(model.parameters()).device
        if self.device is not None and torch.device(self.device) != here:
            wanted = torch.device(self.device)
            if not (wanted.type == here.type and wanted.index is None):
                raise ValueError(f"the model is on {here} but device={self.device!r} was asked; move it with model.to({self.device!r})")
        return here

    def sampler_config(self, default_steps: Mapping[str, int], default: str) -> SamplerConfig:
        """The :class:`SamplerConfig` to use, given the system kind's default steps per
        sampler name and its default sampler name."""
        if isinstance(self.sampler, SamplerConfig):
            return self.sampler
        method = self.sampler or default
        return SamplerConfig(method, default_steps[method] if self.steps is None else self.steps)
