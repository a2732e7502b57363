"""Settings of a reference site search, validated once: what is searched, and how it is run.

:class:`SearchConfig` holds everything that changes the *answer* (placements, convergence,
anomaly test, merging, thermochemistry) and is recorded in the result's ``settings``;
:class:`ExecutionConfig` holds how the work is spread (processes, threads, device, Dask
scheduler), which changes only the wall time.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any

__all__ = ["ExecutionConfig", "SearchConfig", "split_settings"]


@dataclass(frozen=True)
class SearchConfig:
    """What a reference search does (see :func:`~digmat.adsorption.reference_search`).

    Attributes
    ----------
    temperatures : tuple of float
        K, at which free energies and probabilities are reported.
    num_random : int
        Random placements (AdsorbML uses 100).
    heuristic : bool
        Add the site-finder placements.
    relax_surface : bool
        Relax the surface atoms (tag 1) with the adsorbate.
    fmax : float
        Force convergence, eV/Å.
    max_steps : int
        Optimizer steps per relaxation.
    seed : int
        Seed of the placements.
    vibrations : bool
        Compute Hessians and F_vib; otherwise F_vib = 0.
    vib_surface : bool
        Include the free surface atoms in the Hessian.
    energy_tolerance : float
        Energy window for merging equivalent minima, eV.
    surface_mult : float
        Cushioned cutoff multiplier of AdsorbML's surface-change test
        (:func:`~digmat.adsorption.anomalies.detect_anomalies`); >= 1.
    """

    temperatures: tuple[float, ...] = (300.0, 600.0, 1200.0)
    num_random: int = 100
    heuristic: bool = True
    relax_surface: bool = True
    fmax: float = 0.05
    max_steps: int = 300
    seed: int = 0
    vibrations: bool = True
    vib_surface: bool = False
    energy_tolerance: float = 0.02
    surface_mult: float = 1.5

    def __post_init__(self) -> None:
        temps = tuple(float(t) for t in self.temperatures) if hasattr(self.temperatures, "__iter__") else (float(self.temperatures),)
        object.__setattr__(self, "temperatures", temps)
        if not temps or any(not t > 0 for t in temps):
            raise ValueError(f"temperatures must be positive (K), got {self.temperatures!r}")
        for name in ("fmax", "energy_tolerance"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if not self.surface_mult >= 1:
            raise ValueError(f"surface_mult must be >= 1, got {self.surface_mult}")
        if int(self.max_steps) < 1:
            raise ValueError(f"max_steps must be >= 1, got {self.max_steps}")
        if int(self.num_random) < 0:
            raise ValueError(f"num_random must be >= 0, got {self.num_random}")

    def settings(self) -> dict[str, Any]:
        """The result's ``settings`` record (everything but the temperatures, stored beside it)."""
        d = asdict(self)
        d.pop("temperatures")
        return d


@dataclass(frozen=True)
class ExecutionConfig:
    """How a reference search's relaxations are spread.

    Attributes
    ----------
    workers : int
        Worker processes (or LocalCluster workers with ``scheduler="local"``).
    threads : int
        Torch threads per worker process.
    device : str
        Torch device for named potentials.
    scheduler : str, optional
        ``"local"`` or a running ``dask.distributed`` scheduler's address; ``None`` runs in
        this process or a process pool.
    """

    workers: int = 1
    threads: int = 1
    device: str = "cpu"
    scheduler: str | None = None

    def __post_init__(self) -> None:
        for name in ("workers", "threads"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")


def split_settings(config: SearchConfig | None, execution: ExecutionConfig | None,
                   overrides: dict[str, Any]) -> tuple[SearchConfig, ExecutionConfig]:
    """Apply keyword ``overrides`` (the flat keyword form of ``reference_search``) to the two
    configs; an unknown name is a ``TypeError`` as for any function."""
    config = config or SearchConfig()
    execution = execution or ExecutionConfig()
    search_names = {f.name for f in fields(SearchConfig)}
    exec_names = {f.name for f in fields(ExecutionConfig)}
    unknown = set(overrides) - search_names - exec_names
    if unknown:
        raise TypeError(f"reference_search() got unexpected keyword argument(s) {', '.join(sorted(unknown))}")
    search = {k: v for k, v in overrides.items() if k in search_names}
    run = {k: v for k, v in overrides.items() if k in exec_names}
    return (replace(config, **search) if search else config), (replace(execution, **run) if run else execution)
