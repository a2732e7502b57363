"""Density of adsorbate configurations, in-plane probability maps and latent paths.

All densities are of the adsorbate's Cartesian positions given the slab, in nats per
Å^(3m) (m adsorbate atoms; per Å^(3(m+k)) when the model also moves the k surface atoms):

    log p(R) = log p_state(x) − log |det ∂R/∂x|,
    log |det ∂R/∂x| = log A + (3m − 2) log s [+ 3k log s_surf]

with A = |a × b| the surface-cell area (Å²), s the state's length scale and s_surf the
surface-displacement scale (:class:`~digmat.systems.AdsorbateStateConfig`); ``p_state``
comes from the probability-flow ODE (:func:`digmat.core.log_prob`), at the ODE's data end
t_min (the learned distribution carries the schedule's smallest noise). The density is that of
labelled atoms: for an adsorbate with k identical atoms, the density of the unlabelled
configuration is k! times larger where the model treats labels alike.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from ase import Atoms

__all__ = ["DensityMap", "adsorbate_log_density", "density_map", "interpolate_adsorbates", "system_for_configurations"]


def state_log_jacobian(system) -> float:
    """log |det ∂R/∂x| of ``system``'s state → Cartesian map (see the module docstring)."""
    cell = np.asarray(system.slab.cell.array, float)
    area = float(np.linalg.norm(np.cross(cell[0], cell[1])))
    cfg = system.config
    out = math.log(area) + (3 * system.num_adsorbate - 2) * math.log(cfg.length_scale)
    if cfg.relax_surface:
        out += 3 * len(system.surface_index) * math.log(cfg.surface_scale)
    return out


def system_for_configurations(configurations: Sequence[Atoms], adsorbate: str | Atoms | None, model):
    """The :class:`~digmat.systems.AdsorbateSystem` of configurations (slab + adsorbate, tag 2).

    The slab is the first configuration's atoms not tagged 2. The adsorbate (with its anchor,
    the binding atom) is ``adsorbate`` when given (a name or Atoms), else the tag-2 atoms
    of the first configuration with ``info["binding_index"]`` (as written by
    ``digmat adsorb``) as the anchor.
    """
    from digmat.systems import AdsorbateSystem

    from digmat.adsorption.adsorbates import get_adsorbate

    if len(configurations) == 0:
        raise ValueError("no configurations given")
    first = configurations[0]
    tags = first.get_tags()
    ads_idx = np.flatnonzero(tags == 2)
    if len(ads_idx) == 0:
        raise ValueError("the configuration has no adsorbate atoms (tag 2); tag them or write it with `digmat adsorb`")
    if adsorbate is None:
        ads = first[ads_idx]
        binding = first.info.get("binding_index")
        if binding is None or int(binding) not in ads_idx:
            raise ValueError("cannot tell the adsorbate's binding atom: give the adsorbate by name (e.g. --adsorbate CH3CO)")
        ads.info["binding_indices"] = [int(np.flatnonzero(ads_idx == int(binding))[0])]
    else:
        ads = get_adsorbate(adsorbate) if isinstance(adsorbate, str) else adsorbate
    for k, atoms in enumerate(configurations):
        if not np.all(np.isfinite(atoms.positions)):
            raise ValueError(f"configuration {k} has non-finite positions")
        if not np.allclose(atoms.cell.array, first.cell.array, atol=1e-6):
            raise ValueError(f"configuration {k} has a different cell from configuration 0: all must share one slab")
    return AdsorbateSystem(first[tags != 2], ads, config=model.config.state)


def _score(model, system, temperature: float):
    return model.score_fn(system, float(temperature)), system.diffusion(model.config.schedule)


def adsorbate_log_density(
    configurations: Sequence[Atoms],
    model,
    *,
    temperature: float = 300.0,
    adsorbate: str | Atoms | None = None,
    rtol: float = 1e-4,
    probes: int = 8,
    exact_max_dim: int = 12,
    batch_size: int = 64,
    seed: int = 0,
) -> list[Atoms]:
    """log p of each configuration under the model at ``temperature`` (probability-flow ODE).

    Parameters
    ----------
    configurations
        Slab + adsorbate configurations (adsorbate tagged 2), all on the same slab.
    model
        An :class:`~digmat.models.AdsorptionScoreModel`.
    rtol
        Relative and absolute tolerance of the adaptive Dormand–Prince integration.
    probes, exact_max_dim
        The divergence is exact for states of at most ``exact_max_dim`` entries (3 per
        adsorbate atom), else Hutchinson's estimator with ``probes`` Rademacher probes.

    Returns
    -------
    Copies of the configurations with ``info["log_density"]`` (nats per Å^(3m)),
    ``info["log_density_stderr"]`` (Hutchinson's standard error, 0 when exact) and
    ``info["temperature"]`` (K). The inputs are not modified.
    """
    from digmat.core import ODEConfig, log_prob

    system = system_for_configurations(configurations, adsorbate, model)
    score, diffusion = _score(model, system, temperature)
    param = next(model.parameters())
    states = system.to_state(list(configurations)).to(param)
    generator = torch.Generator().manual_seed(seed)
    config = ODEConfig("dopri5", rtol=rtol, atol=rtol)
    lps, errs = [], []
    for chunk in states.split(batch_size):
        res = log_prob(diffusion, score, chunk, config, probes=probes, exact_max_dim=exact_max_dim, generator=generator)
        lps.append(res.log_prob.detach().double().cpu())
        errs.append(res.stderr.detach().double().cpu())
    log_j = state_log_jacobian(system)
    out = []
    for atoms, lp, err in zip(configurations, torch.cat(lps).tolist(), torch.cat(errs).tolist()):
        copy = atoms.copy()
        copy.info.update(log_density=lp - log_j, log_density_stderr=err, temperature=float(temperature))
        out.append(copy)
    return out


@dataclass
class DensityMap:
    """log p of an adsorbate translated over the surface cell at a fixed height and shape.

    ``log_density[i, j]`` (nats per Å^(3m)) is at fractional in-plane position
    ``(u[i], v[j])`` of the anchor atom; ``probability[i, j]`` is the conditional in-plane
    density normalised over the cell (per Å², sums to 1 / ΔA over the grid, ΔA the area
    of one grid cell); ``height`` is the anchor's height above the top surface atom (Å).
    """

    u: np.ndarray
    v: np.ndarray
    log_density: np.ndarray
    probability: np.ndarray
    height: float
    temperature: float
    cell: np.ndarray
    surface_positions: np.ndarray

    def to_dict(self) -> dict:
        return {"u": self.u.tolist(), "v": self.v.tolist(), "height_A": self.height, "temperature_K": self.temperature,
                "log_density": self.log_density.tolist(), "probability_per_A2": self.probability.tolist(),
                "cell": self.cell.tolist()}

    def plot(self, fh, *, dpi: int = 130) -> None:
        """Draw the map (PNG into ``fh``) with the surface atoms over it."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        uu, vv = np.meshgrid(self.u, self.v, indexing="ij")
        xy = np.stack([uu, vv], -1) @ self.cell[:2, :2]
        fig, ax = plt.subplots(figsize=(6.4, 5.6))
        mesh = ax.pcolormesh(xy[..., 0], xy[..., 1], self.probability, shading="gouraud", cmap="viridis")
        fig.colorbar(mesh, ax=ax, label="in-plane probability density (1/Å²)")
        ax.scatter(self.surface_positions[:, 0], self.surface_positions[:, 1], s=120, facecolors="none", edgecolors="w", lw=0.8)
        ax.set_aspect("equal")
        ax.set_xlabel("x (Å)")
        ax.set_ylabel("y (Å)")
        ax.set_title(f"anchor at {self.height:.2f} Å, {self.temperature:g} K")
        fig.tight_layout()
        fig.savefig(fh, format="png", dpi=dpi)
        plt.close(fig)


def density_map(
    reference: Atoms,
    model,
    *,
    temperature: float = 300.0,
    adsorbate: str | Atoms | None = None,
    grid: int = 16,
    height: float | None = None,
    rtol: float = 1e-3,
    probes: int = 4,
    batch_size: int = 64,
    seed: int = 0,
) -> DensityMap:
    """log p over an in-plane grid: ``reference``'s adsorbate translated rigidly over the cell.

    Parameters
    ----------
    reference
        A slab + adsorbate configuration; its adsorbate shape (positions relative to the
        anchor) is kept, and its anchor height unless ``height`` (Å above the top surface
        atom) is given.
    grid
        Points per in-plane cell vector (grid × grid evaluations).
    """
    if grid < 2:
        raise ValueError(f"grid must be >= 2, got {grid}")
    system = system_for_configurations([reference], adsorbate, model)
    state = system.to_state(reference)[0]
    if height is not None:
        state[2] = (height - system.config.height_offset) / system.config.length_scale
    u = np.arange(grid) / grid
    uu, vv = np.meshgrid(u, u, indexing="ij")
    states = state.expand(grid * grid, -1).clone()
    states[:, 0] = torch.as_tensor(uu.ravel())
    states[:, 1] = torch.as_tensor(vv.ravel())
    configs = system.to_atoms(states)
    for atoms in configs:
        atoms.info["binding_index"] = system.num_slab + system.anchor
    scored = adsorbate_log_density(configs, model, temperature=temperature, adsorbate=system_adsorbate(system),
                                   rtol=rtol, probes=probes, batch_size=batch_size, seed=seed)
    logp = np.array([a.info["log_density"] for a in scored]).reshape(grid, grid)
    cell = np.asarray(system.slab.cell.array, float)
    area = float(np.linalg.norm(np.cross(cell[0], cell[1])))
    w = np.exp(logp - logp.max())
    prob = w / (w.sum() * area / grid**2)
    z = system.config.height_offset + system.config.length_scale * float(state[2])
    surface = system.slab.positions[system.surface_index]
    return DensityMap(u, u.copy(), logp, prob, z, float(temperature), cell, surface)


def system_adsorbate(system) -> Atoms:
    """The adsorbate of ``system`` as Atoms with its anchor as binding atom."""
    ads = Atoms(numbers=system.adsorbate_numbers)
    ads.info["binding_indices"] = [system.anchor]
    return ads


def interpolate_adsorbates(
    start: Atoms,
    end: Atoms,
    model,
    *,
    temperature: float = 300.0,
    adsorbate: str | Atoms | None = None,
    num_points: int = 11,
    mode: str = "spherical",
    rtol: float = 1e-4,
    calculator: str | None = None,
) -> list[Atoms]:
    """A path from ``start`` to ``end`` through the model's latent space.

    Both configurations are encoded with the probability-flow ODE, their latents joined
    (``mode="spherical"``: great-circle in the Gaussian entries, shortest arc on the torus;
    ``"linear"``) and every point decoded. The ends reproduce the inputs up to the ODE's
    error. Returns ``num_points`` configurations with ``info["fraction"]`` and, when
    ``calculator`` is given, ``info["energy"]`` (eV, single point).
    """
    from digmat.core import ODEConfig, interpolate

    system = system_for_configurations([start, end], adsorbate, model)
    score, diffusion = _score(model, system, temperature)
    param = next(model.parameters())
    states = system.to_state([start, end]).to(param)
    res = interpolate(diffusion, score, states[0], states[1], num_points, ODEConfig("dopri5", rtol=rtol, atol=rtol), mode=mode)
    path = system.to_atoms(res.path.detach())
    calc = None
    if calculator is not None:
        from digmat.calculators import get_calculator

        calc = get_calculator(calculator)
    for frac, atoms in zip(res.fractions.tolist(), path):
        atoms.info.update(fraction=float(frac), temperature=float(temperature), binding_index=system.num_slab + system.anchor)
        if calc is not None:
            work = atoms.copy()
            work.calc = calc
            atoms.info["energy"] = float(work.get_potential_energy())
    return path
