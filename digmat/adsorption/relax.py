"""Resumable, parallel relaxations and Hessians for the reference site search.

Tasks (a relaxation or a finite-difference Hessian) run in this process
(``workers=1``), in one :class:`concurrent.futures.ProcessPoolExecutor`
(spawned processes) whose workers build the calculator once, by name, in
their initializer, or on a ``dask.distributed`` cluster — a
``LocalCluster`` of ``workers`` single-threaded processes on this machine
(``scheduler="local"``) or the scheduler of a cluster users already run
(``scheduler="tcp://host:8786"``), whose workers build the calculator once
each on their first task (:class:`TaskRunner`).
Each finished task is written at once to its own JSON file in a cache
folder (temporary file, then rename), keyed by a fingerprint of everything
that determines its result (structure, calculator, settings), so an
interrupted search resumes without redoing finished work, and a changed
setting never reuses a stale result.

Calculator calls (energy + forces evaluations) are counted by wrapping the
calculator (:class:`CountingCalculator`).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator, all_changes
from ase.constraints import FixAtoms

from digmat.files import atomic_write_bytes

__all__ = [
    "CalculatorSpec",
    "CountingCalculator",
    "TaskRunner",
    "atoms_from_dict",
    "atoms_to_dict",
    "calculator_name",
    "check_calculator",
    "fingerprint",
    "load_cached",
    "make_calculator",
]

#: A calculator name for :func:`digmat.calculators.get_calculator`, an
#: instance (in-process only), or a picklable zero-argument factory.
CalculatorSpec = str | Calculator | Callable[[], Calculator]


class CountingCalculator(Calculator):
    """Wrap a calculator and count its energy + forces evaluations.

    Parameters
    ----------
    inner : ase.calculators.calculator.Calculator
    """

    implemented_properties = ["energy", "forces"]

    def __init__(self, inner: Calculator):
        super().__init__()
        self.inner = inner
        self.calls = 0

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        work = self.atoms.copy()
        work.calc = self.inner
        self.results = {
            "energy": float(work.get_potential_energy()),
            "forces": np.array(work.get_forces(apply_constraint=False), float),
        }
        self.calls += 1


def calculator_name(spec: CalculatorSpec) -> str:
    """Stable name of a calculator spec (part of every cache fingerprint)."""
    if isinstance(spec, str):
        from digmat.calculators import ALIASES

        key = spec.strip().lower()
        return ALIASES.get(key, key)
    if isinstance(spec, Calculator):
        return type(spec).__name__
    if callable(spec):
        return f"{getattr(spec, '__module__', '')}.{getattr(spec, '__qualname__', repr(spec))}"
    raise ValueError(f"calculator must be a name, an ASE Calculator or a factory, got {type(spec).__name__}")


def check_calculator(spec: CalculatorSpec) -> None:
    """Raise now (not later, inside a worker) for an unknown calculator name or a missing package.

    Raises ``ValueError`` for an unknown name and
    :class:`~digmat.calculators.PotentialNotInstalledError` when its optional package is missing.
    """
    if isinstance(spec, str):
        from digmat.calculators import check_calculator_name

        check_calculator_name(spec)
    elif not (isinstance(spec, Calculator) or callable(spec)):
        raise ValueError(f"calculator must be a name, an ASE Calculator or a factory, got {type(spec).__name__}")


def make_calculator(spec: CalculatorSpec, device: str = "cpu") -> Calculator:
    """Build (or pass through) the calculator of a spec."""
    if isinstance(spec, str):
        from digmat.calculators import get_calculator

        return get_calculator(spec, device=device)
    if isinstance(spec, Calculator):
        return spec
    if callable(spec):
        calc = spec()
        if not isinstance(calc, Calculator):
            raise ValueError(f"the calculator factory returned {type(calc).__name__}, not an ASE Calculator")
        return calc
    raise ValueError(f"calculator must be a name, an ASE Calculator or a factory, got {type(spec).__name__}")


# --------------------------------------------------------------------------
# compact JSON form of Atoms
# --------------------------------------------------------------------------


def _fixed_mask(atoms: Atoms) -> np.ndarray:
    mask = np.zeros(len(atoms), bool)
    for c in atoms.constraints:
        if isinstance(c, FixAtoms):
            mask[c.get_indices()] = True
    return mask


def atoms_to_dict(atoms: Atoms, *, decimals: int = 6) -> dict[str, Any]:
    """Plain-JSON form of Atoms: numbers, positions (Å, rounded), cell, pbc, tags, fixed indices."""
    return {
        "numbers": atoms.numbers.tolist(),
        "positions": np.round(atoms.positions, decimals).tolist(),
        "cell": np.round(atoms.cell.array, 10).tolist(),
        "pbc": [bool(p) for p in atoms.pbc],
        "tags": atoms.get_tags().tolist(),
        "fixed": np.flatnonzero(_fixed_mask(atoms)).tolist(),
    }


def atoms_from_dict(data: dict[str, Any]) -> Atoms:
    """Inverse of :func:`atoms_to_dict`."""
    atoms = Atoms(numbers=data["numbers"], positions=data["positions"], cell=data["cell"], pbc=data["pbc"])
    atoms.set_tags(data["tags"])
    if data.get("fixed"):
        atoms.set_constraint(FixAtoms(indices=data["fixed"]))
    return atoms


def fingerprint(atoms: Atoms, **settings) -> str:
    """SHA-256 (hex, 24 chars) of a structure and the settings of a task on it."""
    payload = json.dumps({"atoms": atoms_to_dict(atoms, decimals=8), **settings}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:24]


# --------------------------------------------------------------------------
# tasks
# --------------------------------------------------------------------------


def _relax(calc: Calculator, atoms: Atoms, fmax: float, max_steps: int) -> dict[str, Any]:
    from ase.optimize import BFGS

    counting = CountingCalculator(calc)
    work = atoms.copy()
    work.calc = counting
    t0 = time.perf_counter()
    try:
        opt = BFGS(work, logfile=None)
        converged = bool(opt.run(fmax=fmax, steps=max_steps))
        energy = float(work.get_potential_energy())
        forces = work.get_forces()  # constrained
    except Exception as exc:  # noqa: BLE001 - a potential failing on one geometry must not stop the search
        return {"error": f"{type(exc).__name__}: {exc}", "calls": counting.calls,
                "seconds": time.perf_counter() - t0}
    return {
        "positions": work.positions.tolist(),
        "energy": energy,
        "fmax": float(np.linalg.norm(forces, axis=1).max()),
        "steps": int(opt.nsteps),
        "converged": converged,
        "calls": counting.calls,
        "seconds": time.perf_counter() - t0,
    }


def _hessian(calc: Calculator, atoms: Atoms, indices: list[int], delta: float) -> dict[str, Any]:
    from digmat.adsorption.thermo import finite_difference_hessian

    t0 = time.perf_counter()
    h = finite_difference_hessian(atoms, calc, indices, delta=delta)
    return {"hessian": h.tolist(), "calls": 6 * len(indices), "seconds": time.perf_counter() - t0}


_TASKS = {"relax": _relax, "hessian": _hessian}
_WORKER: dict[str, Any] = {}


def _init_worker(spec: CalculatorSpec, device: str, threads: int) -> None:
    os.environ["OMP_NUM_THREADS"] = str(threads)
    try:
        import torch

        torch.set_num_threads(threads)
    except ImportError:  # pragma: no cover - torch is a core dependency
        pass
    _WORKER["calc"] = make_calculator(spec, device)


def _worker_task(kind: str, args: tuple) -> dict[str, Any]:
    return _TASKS[kind](_WORKER["calc"], *args)


def _dask_task(spec: CalculatorSpec, device: str, threads: int, kind: str, args: tuple) -> dict[str, Any]:
    """One task on a dask worker; the worker process builds its calculator on its first task."""
    key = (repr(spec), device, threads)
    if _WORKER.get("dask_key") != key:
        _init_worker(spec, device, threads)
        _WORKER["dask_key"] = key
    return _worker_task(kind, args)


def dask_client(scheduler: str, workers: int):
    """A ``dask.distributed`` client: ``"local"`` starts a ``LocalCluster`` of ``workers``
    single-threaded worker processes; anything else is a scheduler address.

    Raises ``ValueError`` when dask.distributed is not installed or the scheduler cannot be reached.
    """
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise ValueError("--scheduler needs dask.distributed: pip install 'dask[distributed]'") from None
    if scheduler == "local":
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                               dashboard_address=None, silence_logs=40)
        return Client(cluster)
    try:
        _probe_tcp(scheduler)  # a refused connection fails now, not after dask's 10 s of retries
        return Client(scheduler, timeout=10)
    except (OSError, TimeoutError) as exc:
        raise ValueError(f"cannot reach the dask scheduler at {scheduler!r}: {exc}") from None


def _probe_tcp(address: str) -> None:
    """Open and close a TCP connection to a ``tcp://host:port`` address (others are left to dask)."""
    import socket
    from urllib.parse import urlsplit

    parts = urlsplit(address)
    if parts.scheme == "tcp" and parts.hostname and parts.port:
        socket.create_connection((parts.hostname, parts.port), timeout=10).close()


def _cache_path(cache: Path | None, key: str) -> Path | None:
    return None if cache is None else cache / f"{key}.json"


def load_cached(cache: Path | None, key: str, fp: str) -> dict[str, Any] | None:
    """The cached result of task ``key`` if its fingerprint is ``fp``, else None."""
    path = _cache_path(cache, key)
    if path is None or not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None  # unreadable: recompute (writes are atomic, so this is foreign damage)
    return data.get("result") if data.get("fingerprint") == fp else None


def _store(cache: Path | None, key: str, fp: str, result: dict[str, Any]) -> None:
    path = _cache_path(cache, key)
    if path is not None:
        blob = json.dumps({"fingerprint": fp, "result": result}).encode()
        atomic_write_bytes(path, lambda fh: fh.write(blob))


class TaskRunner:
    """Run tasks in this process or in one pool of worker processes, with a result cache.

    Use as a context manager; the pool (``workers > 1``) starts on the
    first task that is not cached and serves every later :meth:`run`.

    Parameters
    ----------
    spec : CalculatorSpec
        Calculator; an instance only with ``workers=1``.
    cache : pathlib.Path or None
        Folder of per-task result files (None: no caching).
    workers : int, default 1
        Processes; 1 runs in this process.
    device : str, default "cpu"
        Torch device for named potentials.
    threads : int, default 1
        Torch/OpenMP threads per worker process.
    scheduler : str, optional
        Run the tasks on ``dask.distributed``: ``"local"`` for a
        ``LocalCluster`` of ``workers`` processes, or a scheduler address;
        None (default) uses this process or a process pool.
    """

    def __init__(self, spec: CalculatorSpec, *, cache: Path | None, workers: int = 1,
                 device: str = "cpu", threads: int = 1, scheduler: str | None = None):
        if (workers > 1 or scheduler is not None) and isinstance(spec, Calculator):
            raise ValueError("parallel workers need a calculator name or a picklable factory, not an instance")
        self.spec, self.cache, self.workers = spec, cache, workers
        self.device, self.threads, self.scheduler = device, threads, scheduler
        self._calc: Calculator | None = None
        self._pool = None
        self._client = None

    def __enter__(self) -> TaskRunner:
        return self

    def __exit__(self, *exc) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        if self._client is not None:
            cluster = self._client.cluster if self.scheduler == "local" else None
            self._client.close()
            if cluster is not None:
                cluster.close()
            self._client = None

    def _executor(self):
        if self._pool is None:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor

            ctx = multiprocessing.get_context("spawn")  # no fork of a process holding torch threads
            self._pool = ProcessPoolExecutor(max_workers=self.workers, mp_context=ctx, initializer=_init_worker,
                                             initargs=(self.spec, self.device, self.threads))
        return self._pool

    def run(self, tasks: Iterable[tuple[str, str, str, tuple]]) -> Iterator[tuple[str, dict[str, Any]]]:
        """Yield ``(key, result)`` for each task as it finishes (cached ones first).

        Parameters
        ----------
        tasks : iterable of (key, fingerprint, kind, args)
            ``kind`` is ``"relax"`` (args: atoms, fmax, max_steps) or
            ``"hessian"`` (args: atoms, indices, delta).

        Yields
        ------
        (str, dict)
            Task key and result; results read back from the cache carry
            ``"cached": True``.
        """
        pending = []
        for key, fp, kind, args in tasks:
            hit = load_cached(self.cache, key, fp)
            if hit is not None:
                yield key, {**hit, "cached": True}
            else:
                pending.append((key, fp, kind, args))
        if not pending:
            return
        if self.scheduler is not None:
            yield from self._run_dask(pending)
            return
        if self.workers <= 1:
            if self._calc is None:
                self._calc = make_calculator(self.spec, self.device)
            for key, fp, kind, args in pending:
                result = _TASKS[kind](self._calc, *args)
                _store(self.cache, key, fp, result)
                yield key, result
            return
        from concurrent.futures import as_completed

        pool = self._executor()
        futures = {pool.submit(_worker_task, kind, args): (key, fp) for key, fp, kind, args in pending}
        try:
            for fut in as_completed(futures):
                key, fp = futures[fut]
                result = fut.result()
                _store(self.cache, key, fp, result)
                yield key, result
        finally:
            for fut in futures:
                fut.cancel()

    def _run_dask(self, pending: list) -> Iterator[tuple[str, dict[str, Any]]]:
        """Submit every pending task to the dask cluster; store and yield each as it finishes."""
        from distributed import as_completed

        if self._client is None:
            self._client = dask_client(self.scheduler, self.workers)
        owner = {}
        futures = []
        for key, fp, kind, args in pending:
            fut = self._client.submit(_dask_task, self.spec, self.device, self.threads, kind, args, pure=False)
            owner[fut.key] = (key, fp)
            futures.append(fut)
        try:
            for fut in as_completed(futures):
                key, fp = owner[fut.key]
                result = fut.result()
                _store(self.cache, key, fp, result)
                yield key, result
        finally:
            for fut in futures:
                fut.cancel()
