"""The peptide score model: a transformer over torsion tokens, noise prediction on the torus.

Each state entry of a :class:`~digmat.systems.peptide.PeptideSystem` (φ, ψ, χ of a residue)
is one token.  A token's input is

* what it is (static, from the system): torsion kind one-hot, chemistry descriptors of its
  residue and of the two neighbouring residues, and its place in the chain;
* where it is (dynamic): sin/cos of k·θ_t, k = 1..``harmonics``, of its noisy angle;
* the noise level (Fourier features of log σ̃(t)) and the temperature (T_ref/T − 1).

Tokens attend to every other token of the same peptide (pre-norm transformer layers) with a
learned per-head bias on their residues' sequence separation.  The output is ε per token; the
score is −ε/σ (:meth:`digmat.core.Diffusion.eps_to_score`), switched off where the noise
has made the marginal uniform (:meth:`digmat.core.Diffusion.uniform_gate`).  The model is invariant to
rotations and translations of the peptide because its state is torsions.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from digmat.core import NoiseSchedule, ScoreFn, noise_batch, score_matching_error
from digmat.systems.peptide import CANONICAL_BACKBONES, PeptideSystem

__all__ = ["PeptideModelConfig", "PeptideScoreModel", "peptide_dsm_loss"]

MAX_SEPARATION = 4


@dataclass(frozen=True)
class PeptideModelConfig:
    """Everything needed to rebuild a peptide score model (plain data in checkpoints).

    Attributes
    ----------
    width, layers, heads, ffn : int
        Transformer size.
    harmonics : int
        Angle harmonics k = 1..harmonics in the token input.
    time_features : int
        Fourier features of log σ̃(t).
    schedule : NoiseSchedule
    time_power : float
        Training times t = t_min + (1 − t_min)·u^time_power (> 1: more training at low noise).
    temperature_ref : float
        K; the temperature input is temperature_ref/T − 1.
    temperature_range : (float, float)
        Temperatures of the training data, K (sampling outside is refused).
    training_sequences : tuple of str
        Sequences trained on (metadata for cards and held-out checks).
    steric_points : int
        0: tokens see chemistry descriptors only.  > 0: each token also sees its torsion's
        steric clearance profile (:meth:`~digmat.systems.peptide.PeptideSystem.steric_profiles`,
        this many angles per turn) and the clearance at its current noisy angle.
    steric_current : bool
        Each token also sees its torsion's clearance in the decoded conformation of the
        current noisy state (:meth:`~digmat.systems.peptide.PeptideSystem.clearance`: every
        torsion at once, not one at a time).
    """

    width: int = 128
    layers: int = 4
    heads: int = 4
    ffn: int = 256
    harmonics: int = 3
    time_features: int = 16
    schedule: NoiseSchedule = field(default_factory=NoiseSchedule)
    time_power: float = 1.0
    temperature_ref: float = 300.0
    temperature_range: tuple[float, float] = (300.0, 300.0)
    training_sequences: tuple[str, ...] = ()
    steric_points: int = 0
    steric_current: bool = False

    def __post_init__(self) -> None:
        if self.width % self.heads:
            raise ValueError(f"width {self.width} must be divisible by heads {self.heads}")
        lo, hi = (float(v) for v in self.temperature_range)
        if not 0 < lo <= hi:
            raise ValueError(f"temperature_range must be 0 < lo <= hi, got {self.temperature_range}")
        object.__setattr__(self, "temperature_range", (lo, hi))
        object.__setattr__(self, "training_sequences", tuple(self.training_sequences))

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["temperature_range"] = list(self.temperature_range)
        d["training_sequences"] = list(self.training_sequences)
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PeptideModelConfig:
        data = dict(data)
        data["schedule"] = NoiseSchedule(**data["schedule"])
        data["temperature_range"] = tuple(data["temperature_range"])
        data["training_sequences"] = tuple(data.get("training_sequences", ()))
        return cls(**data)


class TokenBlock(nn.Module):
    """Pre-norm transformer block: multi-head self-attention with an additive per-head bias, then an MLP."""

    def __init__(self, width: int, heads: int, ffn: int):
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(width)
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)
        self.norm2 = nn.LayerNorm(width)
        self.mlp = nn.Sequential(nn.Linear(width, ffn), nn.GELU(), nn.Linear(ffn, width))

    def forward(self, h: Tensor, bias: Tensor) -> Tensor:
        """``h`` (B, S, W), ``bias`` (heads, S, S) added to the attention logits."""
        b, s, w = h.shape
        q, k, v = self.qkv(self.norm1(h)).reshape(b, s, 3, self.heads, w // self.heads).permute(2, 0, 3, 1, 4)
        logits = q @ k.transpose(-1, -2) / math.sqrt(w // self.heads) + bias
        att = torch.softmax(logits, dim=-1) @ v  # (B, heads, S, W/heads)
        h = h + self.proj(att.transpose(1, 2).reshape(b, s, w))
        return h + self.mlp(self.norm2(h))


class PeptideScoreModel(nn.Module):
    """Noise prediction ε(θ_t, t; sequence, T) on the states of any :class:`PeptideSystem`."""

    def __init__(self, config: PeptideModelConfig = PeptideModelConfig()):
        super().__init__()
        self.config = config
        w = config.width
        n_static = PeptideSystem.num_token_features() + len(CANONICAL_BACKBONES) * config.steric_points
        self.static = nn.Sequential(nn.Linear(n_static, w), nn.SiLU(), nn.Linear(w, w))
        n_steric = (len(CANONICAL_BACKBONES) if config.steric_points else 0) + int(config.steric_current)
        self.steric = nn.Sequential(nn.Linear(n_steric, w), nn.SiLU(), nn.Linear(w, w)) if n_steric else None
        self.angle = nn.Linear(2 * config.harmonics, w)
        self.time = nn.Sequential(nn.Linear(2 * config.time_features + 1, w), nn.SiLU(), nn.Linear(w, w))
        self.register_buffer("frequencies", torch.exp(torch.linspace(0.0, math.log(50.0), config.time_features)),
                             persistent=False)
        self.separation_bias = nn.Embedding(2 * MAX_SEPARATION + 2, config.heads)
        nn.init.zeros_(self.separation_bias.weight)
        self.blocks = nn.ModuleList(TokenBlock(w, config.heads, config.ffn) for _ in range(config.layers))
        self.norm = nn.LayerNorm(w)
        self.out = nn.Linear(w, 1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)
        self._cache: dict[tuple, tuple[Tensor, Tensor, Tensor | None]] = {}

    @classmethod
    def from_payload(cls, ckpt: dict[str, Any], *, ema: bool = True) -> PeptideScoreModel:
        """A model (EMA weights by default, eval mode, ``.metadata``) from a loaded checkpoint payload."""
        from digmat.checkpoint import model_from_payload

        return model_from_payload(cls, PeptideModelConfig, ckpt, ema=ema, what="peptide model")

    def check_supported(self, temperature: float) -> None:
        """Refuse temperatures outside the training data's range."""
        lo, hi = self.config.temperature_range
        if not lo - 1e-9 <= temperature <= hi + 1e-9:
            span = f"{lo:g} K" if lo == hi else f"{lo:g}-{hi:g} K"
            raise ValueError(f"temperature {temperature:g} K is outside what this model was trained on ({span})")

    def _system_inputs(self, system: PeptideSystem, like: Tensor) -> tuple[Tensor, Tensor, Tensor | None]:
        """Cached per peptide: static token features, residue separations, steric profiles (or None)."""
        key = (system.key, like.device, like.dtype)
        if key not in self._cache:
            feats = system.token_features()
            profiles = None
            if self.config.steric_points:
                profiles = system.steric_profiles(self.config.steric_points)  # (dim, 2, P)
                feats = np.concatenate([feats, profiles.reshape(len(feats), -1)], axis=1)
                profiles = torch.as_tensor(profiles, dtype=like.dtype, device=like.device)
            feats = torch.as_tensor(feats, dtype=like.dtype, device=like.device)
            res = torch.as_tensor(system.residue_pairs(), device=like.device)
            sep = (res[None, :] - res[:, None]).clamp(-MAX_SEPARATION, MAX_SEPARATION) + MAX_SEPARATION
            self._cache[key] = (feats, sep, profiles)
        return self._cache[key]

    @staticmethod
    def _clearance_at(profiles: Tensor, states: Tensor) -> Tensor:
        """Profiles ``(dim, K, P)`` interpolated (periodic, linear) at angles ``(B, dim)``: ``(B, dim, K)``."""
        points = profiles.shape[-1]
        x = torch.remainder(states, 2 * math.pi) / (2 * math.pi) * points
        lo = torch.floor(x).long().clamp(0, points - 1)
        frac = (x - lo.to(x.dtype))[..., None]
        table = profiles.permute(0, 2, 1)  # (dim, P, K)
        rows = torch.arange(profiles.shape[0], device=states.device)
        return table[rows, lo] * (1 - frac) + table[rows, (lo + 1) % points] * frac

    def eps(self, system: PeptideSystem, states: Tensor, t: Tensor, temperature: float | Tensor) -> Tensor:
        """ε of states ``(B, dim)`` at times ``(B,)`` and temperature (K, scalar or ``(B,)``)."""
        feats, sep, profiles = self._system_inputs(system, states)
        b, d = states.shape
        k = torch.arange(1, self.config.harmonics + 1, dtype=states.dtype, device=states.device)
        phase = states[..., None] * k
        h = self.static(feats)[None] + self.angle(torch.cat([torch.sin(phase), torch.cos(phase)], -1))
        if self.steric is not None:
            steric = [] if profiles is None else [self._clearance_at(profiles, states)]
            if self.config.steric_current:
                steric.append(system.clearance(states)[..., None])
            h = h + self.steric(torch.cat(steric, -1))
        log_sigma = torch.log(self.config.schedule.sigma_tilde(t).clamp_min(1e-6)).to(states.dtype)
        z = log_sigma[:, None] * self.frequencies.to(states.dtype)
        temp = torch.as_tensor(temperature, dtype=states.dtype, device=states.device).expand(b)
        tfeat = torch.cat([torch.sin(z), torch.cos(z), (self.config.temperature_ref / temp - 1.0)[:, None]], -1)
        h = h + self.time(tfeat)[:, None, :]
        bias = self.separation_bias(sep).permute(2, 0, 1).to(states.dtype)  # (heads, d, d)
        for block in self.blocks:
            h = block(h, bias)
        eps = self.out(self.norm(h)).squeeze(-1)
        # Where the marginal is uniform on the circle the exact ε vanishes; the gate makes the
        # network's ε vanish there too, so the probability-flow ODE keeps the uniform prior.
        return eps * system.diffusion(self.config.schedule).uniform_gate(t, states)

    def forward(self, groups: Sequence[tuple[PeptideSystem, Tensor, Tensor, Tensor]]) -> list[Tensor]:
        """ε per group of ``(system, states (B, dim), t (B,), temperature (B,))``."""
        return [self.eps(system, x, t, temp) for system, x, t, temp in groups]

    def score_fn(self, system: PeptideSystem, temperature: float) -> ScoreFn:
        """The score (θ, t) → ∇ log p_t(θ) on ``system``'s states, for the core samplers."""
        diffusion = system.diffusion(self.config.schedule)

        def score(x: Tensor, t: Tensor) -> Tensor:
            return diffusion.eps_to_score(self.eps(system, x, t, temperature), t)

        return score


def peptide_dsm_loss(model: nn.Module, groups: Sequence[tuple[PeptideSystem, Tensor, Tensor]],
                     generator: torch.Generator) -> Tensor:
    """Denoising score matching (ε form) over groups ``(system, clean states (B, dim), T (B,))``.

    The loss is the mean over samples of each sample's mean squared ε error over its torsions.
    """
    core = model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model
    schedule = core.config.schedule
    noised = [noise_batch(system.diffusion(schedule), x0, time_power=core.config.time_power, generator=generator)
              for system, x0, _ in groups]
    eps = model([(system, nb.xt, nb.t, temp) for (system, _, temp), nb in zip(groups, noised)])
    errors = [score_matching_error(nb, -e / nb.std) for nb, e in zip(noised, eps)]
    return torch.cat(errors).mean()
