"""Learning an adsorbate's equilibrium distribution from a calculator's energy alone (no reference search, no structures).

Two stages, each resumable:

1. :func:`sample_adsorbate_boltzmann` — replica exchange with MALA moves
   (:func:`digmat.core.replica_exchange_mala`) on the calculator energy of the adsorbate's states
   (:class:`~digmat.tasks.adsorbate_energy.AdsorbateEnergy`, slab fixed, anchor 0.3–3.5 Å above
   the surface), from the adsorbate placed on every symmetry-distinct site. A ladder of
   temperatures (the requested ones plus rungs up to ``hottest``, neighbours at most
   ``rung_ratio`` apart) lets hot rungs cross between sites; swaps carry the crossings down.
   Every ``jump_every``-th sweep each chain also tries a mode-jumping move
   (:class:`digmat.core.MixtureJump`): the anchor atom proposed afresh near one of the slab's
   sites (all of them, symmetry images included) or anywhere in the window, accepted by the exact
   Metropolis–Hastings ratio — without it a chain can keep its starting site for the whole run
   (Rh(211)+O under CHGNet: one of four chains at 300 K sat 0.5 eV above the others for 180 sweeps).
   The split-R̂ of each rung's energies across chains (:meth:`BoltzmannSamples.rhat`) says
   whether the chains agree.
   Every recorded state keeps its energy and its gradient (eV per state unit), so the target
   score ``-grad E / k_B T`` costs nothing more. The run checkpoints every ``chunk`` sweeps
   (states, adapted step sizes, generator) and a rerun continues it exactly.
2. :func:`adsorption_tsm_loss` on an :class:`EnergyDataset` — target score matching blended with
   DSM (:func:`digmat.core.target_score_blend`) on those samples, with the temperature as the
   condition; trained by :class:`digmat.train.Trainer` like every digmat model, from scratch or
   from the shipped model's weights (fine-tuning).

``digmat train adsorption --energy CALC SLAB ADSORBATE -T 300 600 1200`` runs both.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from ase import Atoms
from ase.calculators.calculator import Calculator
from ase.units import kB
from torch import Tensor, nn

from digmat.core import MixtureJump, noise_batch, target_score_blend
from digmat.systems.adsorbate import AdsorbateSystem
from digmat.tasks.adsorbate_energy import AdsorbateEnergy

__all__ = ["TemperingConfig", "BoltzmannSamples", "temperature_ladder", "slab_fingerprint", "site_jump", "sample_adsorbate_boltzmann",
           "EnergyDataset", "adsorption_tsm_loss"]


@dataclass(frozen=True)
class TemperingConfig:
    """Replica-exchange settings.

    Parameters
    ----------
    chains
        Chains per rung.
    sweeps, burn_in
        Sweeps in all (each one MALA step per chain and rung, then neighbour swaps), and the
        first ones that adapt the step sizes and are not recorded.
    hottest
        Temperature of the hottest rung, K (raised to the hottest requested one).
    rung_ratio
        Largest ratio of neighbouring rungs' temperatures (> 1).
    step_size
        Starting MALA step, Å² (the in-plane fractional entries are preconditioned by their
        noise scale², so a step moves every entry about as far in Å).
    height_window
        (low, high) Å: the anchor at least ``low`` above the lowest surface atom and at most
        ``high`` above the top one (:class:`~digmat.tasks.adsorbate_energy.AdsorbateEnergy`).
    chunk
        Sweeps between checkpoints.
    seed
        Seed of the run's generator.
    jump_every, jump_width, jump_uniform
        A mode-jumping move on every chain and rung every ``jump_every`` sweeps (0: none); its
        Gaussians around the slab's sites have ``jump_width`` Å standard deviation in every
        direction, and ``jump_uniform`` of its proposals are uniform over the window
        (:func:`site_jump`).
    """

    chains: int = 8
    sweeps: int = 400
    burn_in: int = 100
    hottest: float = 2400.0
    rung_ratio: float = 2**0.5
    step_size: float = 1e-4
    height_window: tuple[float, float] = (0.3, 3.5)
    chunk: int = 25
    seed: int = 0
    jump_every: int = 2
    jump_width: float = 0.3
    jump_uniform: float = 0.1

    def __post_init__(self) -> None:
        if not isinstance(self.jump_every, int) or self.jump_every < 0:
            raise ValueError(f"jump_every must be a non-negative integer, got {self.jump_every!r}")
        if not (self.jump_width > 0 and 0 <= self.jump_uniform < 1):
            raise ValueError("jump_width must be > 0 and jump_uniform in [0, 1)")
        for name in ("chains", "sweeps", "chunk"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(f"{name} must be a positive integer, got {getattr(self, name)!r}")
        if not isinstance(self.burn_in, int) or not 0 <= self.burn_in < self.sweeps:
            raise ValueError(f"burn_in must be an integer in [0, sweeps), got {self.burn_in!r}")
        if not self.rung_ratio > 1:
            raise ValueError(f"rung_ratio must be > 1, got {self.rung_ratio}")
        if not (self.hottest > 0 and self.step_size > 0):
            raise ValueError("hottest and step_size must be > 0")
        low, high = (float(v) for v in self.height_window)
        if not low < high:
            raise ValueError(f"height_window must be (low, high) with low < high, got {self.height_window!r}")
        object.__setattr__(self, "height_window", (low, high))


def temperature_ladder(temperatures: Sequence[float], *, hottest: float, ratio: float) -> list[float]:
    """Rung temperatures (K, ascending): every requested one, up to ``hottest``, geometric fill so
    that neighbours are at most ``ratio`` apart.

    Example: (300, 600, 1200), hottest 2400, ratio √2 -> 300, 424, 600, 849, 1200, 1697, 2400.
    """
    points = sorted({float(t) for t in temperatures})
    if not points or points[0] <= 0:
        raise ValueError("temperatures must be positive")
    if hottest > points[-1]:
        points.append(float(hottest))
    ladder = [points[0]]
    for low, high in zip(points, points[1:]):
        n = math.ceil(math.log(high / low) / math.log(ratio) - 1e-9)
        ladder += [low * (high / low) ** (k / n) for k in range(1, n + 1)]
    return ladder


@dataclass
class BoltzmannSamples:
    """Recorded replica-exchange states of an adsorbate on a slab, with energies and gradients.

    Attributes
    ----------
    ladder
        (R,) rung temperatures, K, ascending.
    states
        (R, N, D) recorded states per rung (N = recorded sweeps × chains).
    energy
        (R, N) calculator energies, eV.
    energy_grad
        (R, N, D) their gradients, eV per state unit.
    acceptance, swap_acceptance
        (R,) MALA acceptance per rung and (R - 1,) swap acceptance between neighbours, after burn-in.
    chains
        Chains per rung: ``states[r]`` is sweep-major, chain ``c``'s states are ``states[r, c::chains]``.
    jump_acceptance
        (R,) acceptance of the mode-jumping moves per rung after burn-in (NaN: none were made).
    calls
        Calculator calls spent.
    seconds
        Wall time of the sampling, s.
    """

    ladder: Tensor
    states: Tensor
    energy: Tensor
    energy_grad: Tensor
    acceptance: Tensor
    swap_acceptance: Tensor
    calls: int
    seconds: float
    chains: int = 1
    jump_acceptance: Tensor | None = None

    _ARRAYS = ("ladder", "states", "energy", "energy_grad", "acceptance", "swap_acceptance")

    def __post_init__(self) -> None:
        if self.jump_acceptance is None:
            self.jump_acceptance = torch.full_like(self.acceptance, float("nan"))

    def save(self, path: str | os.PathLike, settings: dict | None = None) -> Path:
        """Write to ``path`` (``.npz``, atomically) with ``settings`` (plain data: how they were made)."""
        arrays = {k: getattr(self, k) for k in (*self._ARRAYS, "jump_acceptance")}
        return _save_state(Path(path), {**arrays, "calls": self.calls, "seconds": self.seconds, "chains": self.chains,
                                        "settings": np.array(json.dumps(settings or {}, sort_keys=True))})

    @classmethod
    def load(cls, path: str | os.PathLike) -> tuple[BoltzmannSamples, dict]:
        """The samples and settings written by :meth:`save`."""
        with np.load(path) as saved:
            missing = [k for k in (*cls._ARRAYS, "calls", "seconds", "settings") if k not in saved]
            if missing:
                raise ValueError(f"{path} is not a digmat samples file (no {', '.join(missing)})")
            arrays = {k: torch.as_tensor(saved[k]) for k in cls._ARRAYS}
            settings = json.loads(str(saved["settings"]))
            # files written before the chain count and jumps were stored: chains from the settings
            chains = int(saved["chains"]) if "chains" in saved else int(settings.get("tempering", {}).get("chains", 1))
            jumps = torch.as_tensor(saved["jump_acceptance"]) if "jump_acceptance" in saved else None
            return cls(**arrays, calls=int(saved["calls"]), seconds=float(saved["seconds"]), chains=chains,
                       jump_acceptance=jumps), settings

    def rung(self, temperature: float) -> int:
        """Index of the rung at ``temperature`` K (ValueError if none)."""
        hit = torch.nonzero(torch.isclose(self.ladder, torch.tensor(float(temperature), dtype=self.ladder.dtype))).flatten()
        if not hit.numel():
            raise ValueError(f"no rung at {temperature:g} K (rungs: {', '.join(f'{t:g}' for t in self.ladder.tolist())})")
        return int(hit[0])

    def rhat(self) -> Tensor:
        """(R,) split-R̂ of each rung's energies across its chains (Gelman–Rubin with every chain
        cut in halves; Vehtari et al. 2021, *Bayesian Anal.* 16, 667): about 1 when the chains sample
        one distribution, above ~1.1 when some sit in basins the others do not visit. NaN with
        fewer than 4 recorded sweeps."""
        rungs, n = self.energy.shape
        sweeps = n // self.chains
        half = sweeps // 2
        if half < 2:
            return torch.full((rungs,), float("nan"), dtype=torch.float64)
        per_chain = self.energy.double().reshape(rungs, sweeps, self.chains)
        seqs = torch.cat([per_chain[:, :half], per_chain[:, sweeps - half:]], dim=2)     # (R, half, 2C)
        within = seqs.var(dim=1).mean(dim=1)
        between = half * seqs.mean(dim=1).var(dim=1)
        pooled = (half - 1) / half * within + between / half
        return torch.sqrt(pooled / within.clamp_min(1e-300))


def slab_fingerprint(slab: Atoms) -> str:
    """The slab's formula and a hash of its cell, positions (to 0.1 mÅ), tags and numbers: samples
    and checkpoints made on the same slab are recognised whatever file or spec it came from."""
    import hashlib

    digest = hashlib.sha1()
    for array in (np.round(slab.cell.array, 4), np.round(slab.positions, 4), slab.get_tags(), slab.numbers):
        digest.update(np.ascontiguousarray(array).tobytes())
    return f"{slab.get_chemical_formula()}:{digest.hexdigest()[:16]}"


def site_jump(energy: AdsorbateEnergy, slab: Atoms, adsorbate: Atoms, *, width: float = 0.3,
              uniform: float = 0.1) -> MixtureJump:
    """The mode-jumping proposal of the adsorbate's anchor atom (state entries 0–2: in-plane
    fractional position and height) on ``energy.system``: Gaussians of ``width`` Å around the anchor
    placed on every ontop/bridge/hollow point of the slab (pymatgen's site finder, no symmetry
    reduction, so every image of a site is a centre) inside the energy's height window, plus a
    ``uniform`` share over the whole surface cell and the window (:attr:`AdsorbateEnergy.bounds`)."""
    from digmat.adsorption.placement import place_adsorbate, surface_sites

    system = energy.system
    points = [point for _, point in surface_sites(slab, symm_reduce=0.0)]
    placed = system.to_state([place_adsorbate(slab, adsorbate, point, angle=0.0, relax_surface=False) for point in points])
    centres = placed[energy.inside(placed), :3]
    cfg = system.config
    low_h, high_h = ((b - cfg.height_offset) / cfg.length_scale for b in energy.bounds)
    if not centres.shape[0]:
        raise ValueError("no site of the slab lies inside the height window")
    scale = width / cfg.length_scale * system.space.torus_scale(centres)[:3]
    return MixtureJump(index=torch.arange(3), centres=centres, scale=scale,
                       low=torch.tensor([0.0, 0.0, low_h], dtype=centres.dtype),
                       high=torch.tensor([1.0, 1.0, high_h], dtype=centres.dtype), uniform=uniform)


def _to_numpy(value):
    return value.detach().cpu().numpy() if isinstance(value, Tensor) else np.asarray(value)


def _save_state(path: Path, arrays: dict) -> Path:
    from digmat.files import atomic_write_bytes

    return atomic_write_bytes(path, lambda fh: np.savez_compressed(fh, **{k: _to_numpy(v) for k, v in arrays.items()}))


def sample_adsorbate_boltzmann(slab: Atoms, adsorbate: Atoms, calculator: Calculator, temperatures: Sequence[float],
                               config: TemperingConfig = TemperingConfig(), *, checkpoint: str | os.PathLike | None = None,
                               progress: bool = False) -> tuple[AdsorbateSystem, BoltzmannSamples]:
    """Boltzmann samples ``p(x) ∝ exp(-E(x) / k_B T)`` of ``adsorbate`` on the fixed ``slab`` by replica exchange.

    Parameters
    ----------
    slab
        Tagged slab (OC20 tags; see :func:`digmat.adsorption.infer_tags`). Not modified.
    adsorbate
        The adsorbate (``info["binding_indices"]`` names the anchor atom), e.g. from
        :func:`digmat.adsorption.get_adsorbate`.
    calculator
        ASE calculator of the energy (eV) and forces.
    temperatures
        Temperatures (K) the samples are wanted at; each is a rung.
    checkpoint
        An ``.npz`` file written every ``config.chunk`` sweeps; when it exists the run continues
        from it (refused if it was written with other settings). Removed when the run ends.

    Returns
    -------
    (system, samples): the :class:`AdsorbateSystem` the states belong to and the samples of
    every rung.
    """
    from digmat.adsorption.placement import heuristic_placements
    from digmat.core import replica_exchange_mala

    system = AdsorbateSystem(slab, adsorbate)
    ladder = temperature_ladder(temperatures, hottest=config.hottest, ratio=config.rung_ratio)
    settings = json.dumps({"config": asdict(config), "ladder": ladder, "slab": slab_fingerprint(slab),
                           "adsorbate": adsorbate.get_chemical_formula(), "calculator": type(calculator).__name__})
    energy = AdsorbateEnergy(system, calculator, height_window=config.height_window)
    # fractional in-plane entries move as far in Å as the Cartesian ones (step sizes in Å²)
    precondition = system.space.torus_scale(torch.zeros(system.dim, dtype=torch.float64)) ** 2
    betas = 1.0 / (kB * torch.tensor(ladder, dtype=torch.float64))      # coldest first
    rungs, chains = len(ladder), config.chains
    generator = torch.Generator().manual_seed(config.seed)
    path = None if checkpoint is None else Path(checkpoint)
    done, calls, seconds = 0, 0, 0.0
    recorded: dict[str, list[Tensor]] = {"states": [], "energy": [], "energy_grad": []}   # (R, S_chunk, C, ...) pieces
    acc_sum = torch.zeros(rungs, dtype=torch.float64)
    swap_sum = torch.zeros(max(rungs - 1, 0), dtype=torch.float64)
    swap_n = torch.zeros_like(swap_sum)
    jump_sum, jump_n = torch.zeros(rungs, dtype=torch.float64), 0
    jump = site_jump(energy, slab, adsorbate, width=config.jump_width, uniform=config.jump_uniform) if config.jump_every else None
    current = None
    if path is not None and path.is_file():
        with np.load(path) as saved:
            if str(saved["settings"]) != settings:
                raise ValueError(f"{path} was written by a run with other settings; remove it or use another output folder")
            done, calls, seconds = int(saved["done"]), int(saved["calls"]), float(saved["seconds"])
            current = tuple(torch.as_tensor(saved[k]) for k in ("x", "e", "g", "h"))
            for key in recorded:
                if saved[key].size:
                    recorded[key] = [torch.as_tensor(saved[key])]
            acc_sum, swap_sum, swap_n, jump_sum = (torch.as_tensor(saved[k]) for k in ("acc_sum", "swap_sum", "swap_n", "jump_sum"))
            jump_n = int(saved["jump_n"])
            generator.set_state(torch.as_tensor(saved["generator"]))
    if current is None:
        starts = system.to_state(heuristic_placements(slab, adsorbate, relax_surface=False))
        starts = starts[energy.inside(starts)]
        if not starts.shape[0]:
            raise ValueError(f"no site placement of the adsorbate lies inside the height window {config.height_window} Å")
        x = starts[torch.arange(chains) % starts.shape[0]]
        current = (x[None].expand(rungs, *x.shape).clone(), None, None, torch.tensor(config.step_size))
    from tqdm import tqdm

    bar = tqdm(total=config.sweeps, initial=done, desc="replica exchange", disable=not progress, dynamic_ncols=True)
    while done < config.sweeps:
        stop = min(done + config.chunk, config.sweeps)
        burn = min(max(config.burn_in - done, 0), stop - done)
        x, e, g, h = current
        t0, calls_before = time.perf_counter(), energy.calls
        out = replica_exchange_mala(system.space, energy, x, betas, sweeps=stop - done, burn_in=burn, step_size=h,
                                    start=None if e is None else (e, g), first_sweep=done, preconditioner=precondition,
                                    jump=jump, jump_every=max(config.jump_every, 1), generator=generator)
        seconds += time.perf_counter() - t0
        calls += energy.calls - calls_before
        kept = stop - done - burn
        if kept:
            for key, value in (("states", out.samples), ("energy", out.energy), ("energy_grad", out.energy_grad)):
                recorded[key].append(value)
            acc_sum += out.acceptance * kept
            tried = torch.isfinite(out.swap_acceptance)
            swap_sum[tried] += out.swap_acceptance[tried] * kept
            swap_n[tried] += kept
            if out.jump_sweeps:
                jump_sum += out.jump_acceptance * out.jump_sweeps
                jump_n += out.jump_sweeps
        current = (out.final, out.final_energy, out.final_grad, out.step_size)
        bar.update(stop - done)
        done = stop
        if path is not None and done < config.sweeps:
            _save_state(path, {"settings": np.array(settings), "done": done, "calls": calls, "seconds": seconds,
                               "x": current[0], "e": current[1], "g": current[2], "h": current[3],
                               **{k: (torch.cat(v, 1) if v else np.zeros(0)) for k, v in recorded.items()}, "acc_sum": acc_sum,
                               "swap_sum": swap_sum, "swap_n": swap_n, "jump_sum": jump_sum, "jump_n": jump_n,
                               "generator": generator.get_state()})
    bar.close()
    if path is not None and path.is_file():
        path.unlink()
    kept_total = config.sweeps - config.burn_in
    joined = {k: torch.cat(v, 1) for k, v in recorded.items()}    # (R, S, C, ...)
    samples = BoltzmannSamples(
        ladder=torch.tensor(ladder, dtype=torch.float64),
        states=joined["states"].reshape(rungs, -1, system.dim),
        energy=joined["energy"].reshape(rungs, -1),
        energy_grad=joined["energy_grad"].reshape(rungs, -1, system.dim),
        acceptance=acc_sum / kept_total,
        swap_acceptance=torch.where(swap_n > 0, swap_sum / swap_n.clamp_min(1), torch.full_like(swap_n, float("nan"))),
        calls=calls, seconds=seconds, chains=chains,
        jump_acceptance=jump_sum / jump_n if jump_n else torch.full((rungs,), float("nan"), dtype=torch.float64))
    return system, samples


class EnergyDataset:
    """Training items for target score matching from :class:`BoltzmannSamples` of one system.

    Parameters
    ----------
    system
        The system the samples' states belong to.
    samples
        The replica-exchange samples.
    temperatures
        (low, high) K: the rungs inside are training data (the hotter helper rungs are not).

    Items are ``(state (D,), temperature K, energy gradient (D,) eV per state unit)``; :meth:`collate`
    makes the ``[(system, states, temperatures, gradients, scale)]`` batch of :func:`adsorption_tsm_loss`,
    where ``scale`` (D,) is each entry's root-mean-square gradient over the whole set (eV per
    state unit; a constant, so the blend does not depend on the batch).
    """

    def __init__(self, system: AdsorbateSystem, samples: BoltzmannSamples, temperatures: tuple[float, float]):
        low, high = temperatures
        keep = [k for k, t in enumerate(samples.ladder.tolist()) if low - 1e-6 <= t <= high + 1e-6]
        if not keep:
            raise ValueError(f"no rung lies within {low:g}-{high:g} K")
        self.system = system
        self.states = samples.states[keep].reshape(-1, system.dim).to(torch.float32)
        self.grads = samples.energy_grad[keep].reshape(-1, system.dim).to(torch.float32)
        n = samples.states.shape[1]
        self.temperatures = samples.ladder[keep].repeat_interleave(n).to(torch.float32)
        if not (torch.isfinite(self.states).all() and torch.isfinite(self.grads).all()):
            raise ValueError("the samples hold non-finite states or gradients")
        rms = self.grads.pow(2).mean(0).sqrt()
        self.scale = rms.clamp_min(1e-3 * float(rms.max().clamp_min(1e-12)))
        self.temperature_range = (float(samples.ladder[keep[0]]), float(samples.ladder[keep[-1]]))

    def __len__(self) -> int:
        return self.states.shape[0]

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor, Tensor]:
        return self.states[index], self.temperatures[index], self.grads[index]

    def collate(self, items: list, device: torch.device | str = "cpu"):
        states, temps, grads = (torch.stack(v).to(device) for v in zip(*items))
        return [(self.system, states, temps, grads, self.scale.to(device))]


def adsorption_tsm_loss(model: nn.Module, groups: Sequence[tuple], generator: torch.Generator) -> Tensor:
    """Target score matching blended with DSM over a batch of systems, one network pass.

    Parameters
    ----------
    model
        An :class:`~digmat.models.AdsorptionScoreModel` (or a DDP wrapper of one).
    groups
        ``(system, clean states (B, D), temperatures (B,) K, dE/dx (B, D) eV per state unit,
        scale (D,) eV per state unit)`` per system; the target score is ``-dE/dx / k_B T`` and
        the blend's g is ``scale / k_B T`` (per entry and per sample, independent of the sample).
    """
    core = model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model
    diffusions = [system.diffusion(core.config.schedule) for system, *_ in groups]
    noised = [noise_batch(d, x0, generator=generator) for d, (_, x0, *_) in zip(diffusions, groups)]
    eps = model([(system, nb.xt, nb.t, temp) for (system, _, temp, *_), nb in zip(groups, noised)])
    errors = []
    for d, nb, e, (_, x0, temp, grad, scale) in zip(diffusions, noised, eps, groups):
        kt = kB * temp.to(x0.dtype)[:, None]
        target, weight = target_score_blend(d, nb, -grad / kt, scale[None] / kt)
        errors.append((weight * (d.eps_to_score(e, nb.t) - target) ** 2).mean(1))
    return torch.cat(errors).mean()
