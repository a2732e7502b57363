"""The adsorption score model: periodic Graphormer -> noise prediction on an adsorbate's state.

The network sees the configuration (slab + adsorbate, Cartesian, in-plane lattice images; slab
atoms deeper than ``network_depth`` below the surface left out when it is set) with roles 0 subsurface, 1 surface, 2 adsorbate and 3 the anchor atom, the diffusion time, and
the temperature as the condition log(T / T_ref). Its equivariant per-atom vectors w_i become the
noise prediction of the state (see :mod:`digmat.systems.adsorbate`):

    eps_u = w_anchor . a_hat,  eps_v = w_anchor . b_hat,  eps_h = w_anchor . n,
    eps_internal_j = w_j,      eps_surface_k = w_k.

All of these are linear in w, so rotating the system about the surface normal leaves the
torus and height entries unchanged and rotates the Cartesian ones, and any lattice translation
of the configuration leaves everything unchanged (the network is lattice-image invariant).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from ase import Atoms
from torch import Tensor, nn

from digmat.core import NoisedBatch, NoiseSchedule, ScoreFn, noise_batch, pooled_target, score_matching_error
from digmat.nn import AtomsBatch, GraphormerConfig, PeriodicGraphormer
from digmat.systems.adsorbate import ANCHOR_TAG, AdsorbateStateConfig, AdsorbateSystem

__all__ = ["AdsorptionModelConfig", "AdsorptionScoreModel", "adsorption_dsm_loss"]


def _default_network() -> GraphormerConfig:
    return GraphormerConfig(num_layers=4, embed_dim=96, num_heads=6, ffn_dim=192, num_rbf=32, cutoff=6.0, num_tags=ANCHOR_TAG + 1, num_conditions=1, scalar_out=0)


@dataclass(frozen=True)
class AdsorptionModelConfig:
    """Everything needed to rebuild an adsorption score model (plain data in checkpoints).

    Parameters
    ----------
    network
        The Graphormer (needs ``num_tags >= 4`` and ``num_conditions == 1``).
    state
        How configurations become states.
    schedule
        The forward process's noise schedule.
    temperature_ref
        T_ref of the condition log(T / T_ref), K.
    temperature_range
        Temperatures (K) the model was trained on; sampling outside is refused.
    elements
        Chemical symbols seen in training (empty: no restriction).
    adsorbates
        Hill formulas of the adsorbates seen in training (empty: no restriction).
    network_depth
        Slab atoms deeper than this below the top surface atom (Å) are left out of the
        network's input (they are fixed and far from the adsorbate; None keeps all). Two
        (111) layers, which tell fcc from hcp hollows, lie within 2.5 Å on every metal.
    torus_gate
        ``(start, end)`` of :meth:`digmat.core.Diffusion.uniform_gate`: the in-plane noise
        prediction is tapered to zero where the in-plane marginal is uniform (in-plane noise
        std from ``start`` to ``end`` surface-cell periods); None keeps the raw network output.
        Without it the probability-flow ODE integrates the network's residual at high noise
        and over-fills ontop sites (measured: O on Pt(111), ontop 0.42 instead of 0.04).
    inplane_metric
        Map the anchor's vector to the in-plane noise prediction with the inverse metric of
        the surface cell, ``eps_uv = G^-1 (w.a_hat, w.b_hat)``, ``G = [[1, a_hat.b_hat],
        [a_hat.b_hat, 1]]``: the in-plane noise is isotropic in (u, v), so a Cartesian
        displacement d of the anchor is ``sigma (eps_u a_hat + eps_v b_hat)`` and this map
        lets the network output ``w = d / sigma`` itself on any cell angle (False: plain
        projections, which ask the network to learn G^-1 of hexagonal cells).
    """

    network: GraphormerConfig = field(default_factory=_default_network)
    state: AdsorbateStateConfig = AdsorbateStateConfig()
    schedule: NoiseSchedule = NoiseSchedule()
    temperature_ref: float = 300.0
    temperature_range: tuple[float, float] = (250.0, 1500.0)
    elements: tuple[str, ...] = ()
    adsorbates: tuple[str, ...] = ()
    network_depth: float | None = None
    torus_gate: tuple[float, float] | None = (0.45, 0.75)
    inplane_metric: bool = True

    def __post_init__(self) -> None:
        if self.network.num_tags <= ANCHOR_TAG:
            raise ValueError(f"the network needs num_tags >= {ANCHOR_TAG + 1} (roles 0-2 and the anchor)")
        if self.network.num_conditions != 1:
            raise ValueError("the network needs exactly one condition (the temperature)")
        lo, hi = self.temperature_range
        if not 0 < lo < hi:
            raise ValueError(f"temperature_range must be 0 < low < high, got {self.temperature_range}")
        object.__setattr__(self, "temperature_range", (float(lo), float(hi)))
        object.__setattr__(self, "elements", tuple(self.elements))
        object.__setattr__(self, "adsorbates", tuple(self.adsorbates))
        if self.torus_gate is not None:
            start, end = (float(v) for v in self.torus_gate)
            if not 0 < start < end:
                raise ValueError(f"torus_gate must be (start, end) with 0 < start < end, got {self.torus_gate}")
            object.__setattr__(self, "torus_gate", (start, end))
        if self.network_depth is not None and self.network_depth < 0:
            raise ValueError(f"network_depth must be >= 0 Å or None, got {self.network_depth}")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["temperature_range"] = list(self.temperature_range)
        d["elements"] = list(self.elements)
        d["adsorbates"] = list(self.adsorbates)
        d["torus_gate"] = None if self.torus_gate is None else list(self.torus_gate)
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AdsorptionModelConfig:
        gate = data.get("torus_gate", cls.torus_gate)
        return cls(
            network=GraphormerConfig.from_dict(data["network"]),
            state=AdsorbateStateConfig(**data["state"]),
            schedule=NoiseSchedule(**data["schedule"]),
            temperature_ref=float(data["temperature_ref"]),
            temperature_range=tuple(data["temperature_range"]),
            elements=tuple(data.get("elements", ())),
            adsorbates=tuple(data.get("adsorbates", ())),
            network_depth=data.get("network_depth"),
            torus_gate=None if gate is None else tuple(gate),
            inplane_metric=bool(data.get("inplane_metric", False)),  # checkpoints before the option used projections
        )


class AdsorptionScoreModel(nn.Module):
    """Noise prediction eps(x_t, t; T) on the states of any :class:`AdsorbateSystem`."""

    def __init__(self, config: AdsorptionModelConfig = AdsorptionModelConfig()):
        super().__init__()
        self.config = config
        self.network = PeriodicGraphormer(config.network)

    @classmethod
    def from_payload(cls, ckpt: dict[str, Any], *, ema: bool = True) -> AdsorptionScoreModel:
        """A model (EMA weights by default, eval mode, ``.metadata``) from a loaded checkpoint payload."""
        from digmat.checkpoint import model_from_payload

        return model_from_payload(cls, AdsorptionModelConfig, ckpt, ema=ema, what="adsorption model")

    # ------------------------------------------------------------------ checks
    def check_supported(self, system: AdsorbateSystem, temperature: float) -> None:
        """Refuse elements or temperatures outside what the model was trained on."""
        lo, hi = self.config.temperature_range
        if not lo <= temperature <= hi:
            raise ValueError(f"temperature {temperature} K is outside the model's trained range {lo:g}-{hi:g} K")
        if self.config.elements:
            from ase.data import chemical_symbols

            present = {chemical_symbols[z] for z in np.concatenate([system.slab.numbers, system.adsorbate_numbers])}
            unknown = sorted(present - set(self.config.elements))
            if unknown:
                raise ValueError(
                    f"the model was not trained on {', '.join(unknown)} (it knows {', '.join(self.config.elements)}); "
                    "train one with `digmat train adsorption` on data that contains them"
                )
        if self.config.adsorbates:
            formula = Atoms(numbers=system.adsorbate_numbers).get_chemical_formula(mode="hill")
            if formula not in self.config.adsorbates:
                raise ValueError(
                    f"the model was not trained on the adsorbate {formula} (it knows {', '.join(self.config.adsorbates)}); "
                    "train one with `digmat train adsorption` on data that contains it"
                )

    # ------------------------------------------------------------------ forward
    def _condition(self, temperature: Tensor) -> Tensor:
        return torch.log(temperature / self.config.temperature_ref)[:, None]

    def forward(self, groups: Sequence[tuple[AdsorbateSystem, Tensor, Tensor, Tensor]]) -> list[Tensor]:
        """Noise predictions for several systems in one network pass.

        Parameters
        ----------
        groups
            ``(system, states (B_g, D_g), t (B_g,), temperature (B_g,) in K)`` per system.

        Returns
        -------
        One eps tensor (B_g, D_g) per group.
        """
        param = next(self.network.parameters())
        kept = [self.input_atoms(system) for system, *_ in groups]
        pieces = [_system_batch(system, system.positions(x.to(param.dtype))[:, keep], t.to(param.dtype), keep) for (system, x, t, _), keep in zip(groups, kept)]
        batch = AtomsBatch.concat(pieces)
        t_all = torch.cat([t for _, _, t, _ in groups]).to(param)
        cond = self._condition(torch.cat([temp for _, _, _, temp in groups]).to(param))
        vectors = self.network(batch, t_all, cond, vector_mask=batch.tags >= 1).vectors
        out, start = [], 0
        for (system, x, t, _), keep in zip(groups, kept):
            n = x.shape[0] * len(keep)
            full = vectors.new_zeros(x.shape[0], system.num_slab + system.num_adsorbate, 3)
            full[:, keep] = vectors[start : start + n].reshape(x.shape[0], -1, 3)
            eps = _state_eps(system, full, self.config.inplane_metric).to(x.dtype)
            if self.config.torus_gate is not None:
                eps = eps * system.diffusion(self.config.schedule).uniform_gate(t.to(x.dtype), eps, *self.config.torus_gate)
            out.append(eps)
            start += n
        return out

    def input_atoms(self, system: AdsorbateSystem) -> np.ndarray:
        """Indices of the atoms of ``system``'s configurations that the network sees."""
        n = system.num_slab + system.num_adsorbate
        if self.config.network_depth is None:
            return np.arange(n)
        heights = system.slab.positions @ system.normal
        slab_keep = np.flatnonzero((heights >= system.z_top - self.config.network_depth) | (system.tags[: system.num_slab] == 1))
        return np.concatenate([slab_keep, np.arange(system.num_slab, n)])

    def eps(self, system: AdsorbateSystem, states: Tensor, t: Tensor, temperature: float | Tensor) -> Tensor:
        """Noise prediction (B, D) for states (B, D) of one system at times t (B,)."""
        temp = torch.as_tensor(temperature, dtype=states.dtype, device=states.device).expand(states.shape[0])
        return self([(system, states, t, temp)])[0]

    def score_fn(self, system: AdsorbateSystem, temperature: float) -> ScoreFn:
        """The score (x, t) -> grad log p_t(x | T) on ``system``'s states, for the core samplers."""
        self.check_supported(system, temperature)
        diffusion = system.diffusion(self.config.schedule)

        def score(x: Tensor, t: Tensor) -> Tensor:
            return diffusion.eps_to_score(self.eps(system, x, t, temperature), t)

        return score


def _system_batch(system: AdsorbateSystem, positions: Tensor, t: Tensor, keep: np.ndarray) -> AtomsBatch:
    """An AtomsBatch of B copies of ``system``'s atoms ``keep`` at ``positions`` (B, len(keep), 3); periodic in-plane only."""
    b, n, _ = positions.shape
    device, dtype = positions.device, positions.dtype
    numbers = torch.as_tensor(np.concatenate([system.slab.numbers, system.adsorbate_numbers])[keep], device=device)
    tags = torch.as_tensor(system.network_tags[keep], device=device)
    cell = torch.as_tensor(system.slab.cell.array, dtype=dtype, device=device)
    return AtomsBatch(
        positions=positions.reshape(b * n, 3),
        numbers=numbers.repeat(b),
        tags=tags.repeat(b),
        cell=cell.expand(b, 3, 3).clone(),
        pbc=torch.tensor([True, True, False], device=device).expand(b, 3).clone(),
        batch=torch.arange(b, device=device).repeat_interleave(n),
        natoms=torch.full((b,), n, dtype=torch.long, device=device),
    )


def _state_eps(system: AdsorbateSystem, vectors: Tensor, inplane_metric: bool) -> Tensor:
    """Map per-atom vectors (B, N, 3) to the state's noise prediction (B, D)."""
    frame = torch.as_tensor(system.frame, dtype=vectors.dtype, device=vectors.device)
    a_hat = frame[0] / frame[0].norm()
    b_hat = frame[1] / frame[1].norm()
    ads = vectors[:, system.num_slab :]
    order = torch.as_tensor(system.state_order, device=vectors.device)
    ads = ads[:, order]  # anchor first, then the others in state order
    w = ads[:, 0]
    uv = torch.stack([w @ a_hat, w @ b_hat], dim=1)
    if inplane_metric:
        cos = a_hat @ b_hat
        uv = torch.stack([uv[:, 0] - cos * uv[:, 1], uv[:, 1] - cos * uv[:, 0]], dim=1) / (1 - cos**2)
    parts = [uv, (w @ frame[2])[:, None], ads[:, 1:].reshape(ads.shape[0], -1)]
    if system.config.relax_surface:
        surf = vectors[:, torch.as_tensor(system.surface_index, device=vectors.device)]
        parts.append(surf.reshape(surf.shape[0], -1))
    return torch.cat(parts, dim=1)


def adsorption_dsm_loss(model: nn.Module, groups: Sequence[tuple[AdsorbateSystem, Tensor, Tensor]], generator: torch.Generator,
                        *, pools: Callable[[AdsorbateSystem, float], Tensor] | None = None) -> Tensor:
    """Denoising score matching (eps form) over a batch of several systems, one network pass.

    Parameters
    ----------
    model
        An :class:`AdsorptionScoreModel` (or a DDP wrapper of one).
    groups
        ``(system, clean states (B_g, D_g), temperatures (B_g,) K)`` per system.
    pools
        ``(system, temperature K) -> (M, D_g)`` the training states of that system at that
        temperature (e.g. :meth:`~digmat.tasks.datasets.AdsorptionDataset.pool`): each sample's
        target becomes the exact score of that pool at its noised state
        (:func:`~digmat.core.pooled_target`; same minimiser, less variance). None: the DSM target.
    """
    core = model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model
    schedule = core.config.schedule
    noised = [noise_batch(system.diffusion(schedule), x0, generator=generator) for system, x0, _ in groups]
    if pools is not None:
        noised = [_pooled(system, schedule, nb, temps, pools) for (system, _, temps), nb in zip(groups, noised)]
    eps = model([(system, nb.xt, nb.t, temp) for (system, _, temp), nb in zip(groups, noised)])
    errors = [score_matching_error(nb, -e / nb.std) for nb, e in zip(noised, eps)]
    return torch.cat(errors).mean()


def _pooled(system: AdsorbateSystem, schedule: NoiseSchedule, noised: NoisedBatch, temps: Tensor,
            pools: Callable[[AdsorbateSystem, float], Tensor]) -> NoisedBatch:
    """``noised`` with each sample's target the pooled score of its system at its temperature."""
    diffusion = system.diffusion(schedule)
    target = noised.target.clone()
    for temp in torch.unique(temps).tolist():
        rows = temps == temp
        part = NoisedBatch(xt=noised.xt[rows], t=noised.t[rows], target=noised.target[rows], std=noised.std[rows])
        pool = pools(system, temp).to(device=noised.xt.device, dtype=noised.xt.dtype)
        target[rows] = pooled_target(diffusion, part, pool).target
    return NoisedBatch(xt=noised.xt, t=noised.t, target=target, std=noised.std)
