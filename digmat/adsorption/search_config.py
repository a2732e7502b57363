"""Settings of a reference site search, validated once: what is searched, and how it is run.

:class:`SearchConfig` holds everything that changes the *answer* (placements, convergence,
anomaly test, merging, thermochemistry) and is recorded in the result's ``settings``;
:class:`ExecutionConfig` holds how the work is spread (processes, threads, device, Dask
scheduler), which changes only the wall time.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields, replace
from numbers import Integral, Real
from typing import Any

__all__ = ["ExecutionConfig", "SearchConfig", "split_settings"]


def _integer(name: str, value: Any) -> int:
    """``value`` as a Python int (numpy integers too, so that the settings stay JSON); no bools or floats."""
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise ValueError(f"{name} must be an integer, got {value!r}")  # noqa: TRY004 (configs raise ValueError)
    return int(value)


def _real(name: str, value: Any) -> float:
    """``value`` as a finite Python float."""
    if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    return float(value)


def _flag(name: str, value: Any) -> bool:
    """``value`` as a Python bool (numpy bools too); a string such as "False" is refused, not truthy."""
    if isinstance(value, (str, bytes)) or value not in (True, False):
        raise ValueError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def _temperatures(value: Any) -> tuple[float, ...]:
    """One temperature or a sequence of them as a tuple of positive finite floats, K."""
    items = (value,) if isinstance(value, (Real, str, bytes)) else tuple(value)
    temps = tuple(_real("temperatures", t) for t in items)
    if not temps or any(not t > 0 for t in temps):
        raise ValueError(f"temperatures must be positive (K), got {value!r}")
    return temps


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
        Seed of the placements, >= 0.
    vibrations : bool
        Compute Hessians and F_vib; otherwise F_vib = 0.
    vib_surface : bool
        Include the free surface atoms in the Hessian.
    hessian_delta : float
        Displacement of the finite-difference Hessian, Å (a record written before this
        field existed was searched with the default, 0.01).
    energy_tolerance : float
        Energy window for merging equivalent minima, eV.
    surface_mult : float
        Cushioned cutoff multiplier of AdsorbML's surface-change test
        (:func:`~digmat.adsorption.anomalies.detect_anomalies`); > 1.
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
    hessian_delta: float = 0.01
    energy_tolerance: float = 0.02
    surface_mult: float = 1.5

    def __post_init__(self) -> None:
        object.__setattr__(self, "temperatures", _temperatures(self.temperatures))
        for name in ("num_random", "max_steps", "seed"):
            object.__setattr__(self, name, _integer(name, getattr(self, name)))
        for name in ("fmax", "hessian_delta", "energy_tolerance", "surface_mult"):
            object.__setattr__(self, name, _real(name, getattr(self, name)))
        for name in ("heuristic", "relax_surface", "vibrations", "vib_surface"):
            object.__setattr__(self, name, _flag(name, getattr(self, name)))
        for name in ("fmax", "hessian_delta", "energy_tolerance"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if not self.surface_mult > 1:
            raise ValueError(f"surface_mult must be > 1 (a cushion above the bonding cutoff), got {self.surface_mult}")
        if self.max_steps < 1:
            raise ValueError(f"max_steps must be >= 1, got {self.max_steps}")
        if self.num_random < 0:
            raise ValueError(f"num_random must be >= 0, got {self.num_random}")
        if self.seed < 0:
            raise ValueError(f"seed must be >= 0, got {self.seed}")

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any], temperatures: Sequence[float] | None = None) -> SearchConfig:
        """The config a result was searched with, from its ``settings`` record (and temperatures, K).

        Keys that are not fields (``vib_floor``, a constant of the code recorded beside them)
        are ignored; fields missing from an older record take their defaults. A recorded
        ``surface_mult`` of 1.0 names the retired single-cutoff surface-change test (116 corpus
        results, data/README.md); the two-cutoff test that replaced it flags a subset of what it
        flagged, so such records are rebuilt with the default cushion — a rerun is then valid
        instead of failing in the anomaly test after its relaxations.
        """
        known = {f.name for f in fields(cls)} - {"temperatures"}
        values = {k: v for k, v in settings.items() if k in known}
        if "surface_mult" in values and values["surface_mult"] == 1.0:
            values.pop("surface_mult")
        return cls(**values) if temperatures is None else cls(temperatures=tuple(temperatures), **values)

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
            object.__setattr__(self, name, _integer(name, getattr(self, name)))
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if hasattr(self.device, "type") and not isinstance(self.device, str):  # a torch.device
            object.__setattr__(self, "device", str(self.device))
        if not isinstance(self.device, str) or not self.device:
            raise ValueError(f"device must be a torch device name such as 'cpu' or 'cuda', got {self.device!r}")
        if self.scheduler is not None and (not isinstance(self.scheduler, str) or not self.scheduler):
            raise ValueError(f"scheduler must be None, 'local' or a scheduler address, got {self.scheduler!r}")


def split_settings(config: SearchConfig | None, execution: ExecutionConfig | None,
                   overrides: dict[str, Any], caller: str = "reference_search") -> tuple[SearchConfig, ExecutionConfig]:
    """Apply keyword ``overrides`` (the flat keyword form of ``reference_search``) to the two
    configs; an unknown name is a ``TypeError`` naming ``caller``, as for any function."""
    config = config or SearchConfig()
    execution = execution or ExecutionConfig()
    search_names = {f.name for f in fields(SearchConfig)}
    exec_names = {f.name for f in fields(ExecutionConfig)}
    unknown = set(overrides) - search_names - exec_names
    if unknown:
        raise TypeError(f"{caller}() got unexpected keyword argument(s) {', '.join(sorted(unknown))}")
    search = {k: v for k, v in overrides.items() if k in search_names}
    run = {k: v for k, v in overrides.items() if k in exec_names}
    return (replace(config, **search) if search else config), (replace(execution, **run) if run else execution)
