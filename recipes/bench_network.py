"""Benchmark the default PeriodicGraphormer: time and peak memory of forward and forward+backward.

Systems: Pt(111) slabs (pbc T,T,F, 4 layers, 10 Å vacuum) and Pt fcc bulk supercells
with 32, 64, 128 and 256 atoms, rattled by 0.05 Å, in batches of 1 and 16 copies.

* ``forward_ms``: median wall time of ``model(batch, t)`` under ``torch.no_grad``.
* ``fwd_bwd_ms``: median wall time of forward + ``loss.backward()`` into the
  parameters, ``loss = sum |vectors|^2`` (one training step without the optimiser).
* ``peak_mem_MB``: on CUDA ``torch.cuda.max_memory_allocated`` during one
  forward+backward; on CPU the increase of the process's peak resident set size
  (``ru_maxrss``) over the resident size after building model and batch. Every case runs
  in a fresh subprocess so the CPU figure is not polluted by earlier cases.

CPU allocator: glibc serves every allocation above 32 MB with a fresh ``mmap``
and returns it on free, so each large per-edge tensor (batch 16 × 128+ atoms)
pays page faults again on every call. ``--malloc no-mmap`` runs the cases with
``MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=10**11`` (heap memory is reused),
which makes the large CPU cases several times faster; the same environment
variables help training runs. (No effect on CUDA.)

Usage::

    python recipes/bench_network.py            # full table, JSON list on stdout
    python recipes/bench_network.py --quick    # one tiny case, seconds
    python recipes/bench_network.py --threads 1 --malloc no-mmap
    python recipes/bench_network.py --device cuda
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time

SLAB_SIZES = {32: (4, 4, 2), 64: (4, 4, 4), 128: (8, 4, 4), 256: (8, 8, 4)}
BULK_SIZES = {32: (2, 2, 2), 64: (2, 2, 4), 128: (2, 4, 4), 256: (4, 4, 4)}


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def build_systems(kind: str, natoms: int, batch: int, seed: int = 0):
    import numpy as np
    from ase.build import bulk, fcc111

    rng = np.random.default_rng(seed)
    if kind == "slab":
        base = fcc111("Pt", size=SLAB_SIZES[natoms], vacuum=10.0)
        base.set_tags((base.get_tags() == 1).astype(int))       # OC20: 1 surface, 0 subsurface
    else:
        base = bulk("Pt", "fcc", a=3.92, cubic=True).repeat(BULK_SIZES[natoms])
    assert len(base) == natoms
    systems = []
    for _ in range(batch):
        atoms = base.copy()
        atoms.positions += rng.normal(scale=0.05, size=atoms.positions.shape)
        systems.append(atoms)
    return systems


def rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        pages = int(fh.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def run_case(kind: str, natoms: int, batch_size: int, repeats: int, device: str,
             dtype_name: str) -> dict:
    """Benchmark one case in this process and return its JSON record."""
    import torch

    from digmat.nn import AtomsBatch, GraphormerConfig, PeriodicGraphormer

    dtype = {"float32": torch.float32, "float64": torch.float64}[dtype_name]
    torch.manual_seed(0)
    model = PeriodicGraphormer(GraphormerConfig()).to(device=device, dtype=dtype)
    batch = AtomsBatch.from_atoms(build_systems(kind, natoms, batch_size), dtype=dtype,
                                  device=device)
    t = torch.full((batch_size,), 0.5, dtype=dtype, device=device)
    cuda = device.startswith("cuda")

    def sync() -> None:
        if cuda:
            torch.cuda.synchronize()

    def forward() -> None:
        with torch.no_grad():
            model(batch, t)

    def forward_backward() -> None:
        model.zero_grad(set_to_none=True)
        model(batch, t).vectors.square().sum().backward()

    def timed(fn) -> float:
        sync()
        start = time.perf_counter()
        fn()
        sync()
        return 1e3 * (time.perf_counter() - start)

    if cuda:
        torch.cuda.reset_peak_memory_stats()
        base_mem = torch.cuda.memory_allocated()
    else:
        base_mem = rss_mb()
    forward()                        # warm-up (allocator, kernels); counts towards the peak
    forward_backward()
    edges = model.neighbors(batch).num_edges
    fwd = [timed(forward) for _ in range(repeats)]
    fb = [timed(forward_backward) for _ in range(repeats)]
    if cuda:
        peak = (torch.cuda.max_memory_allocated() - base_mem) / 2**20
        method = "cuda max_memory_allocated - allocated before"
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - base_mem
        method = "cpu peak RSS (ru_maxrss) - RSS after setup"
    return {
        "kind": kind,
        "natoms": natoms,
        "batch": batch_size,
        "edges_per_atom": round(edges / (natoms * batch_size), 1),
        "forward_ms": round(statistics.median(fwd), 2),
        "fwd_bwd_ms": round(statistics.median(fb), 2),
        "peak_mem_MB": round(max(peak, 0.0), 1),
        "mem_method": method,
        "params": model.num_parameters(),
        "repeats": repeats,
        "dtype": dtype_name,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "device": torch.cuda.get_device_name(device) if cuda else "cpu",
        "cpu": cpu_model(),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="one 32-atom slab, batch 1")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    parser.add_argument("--device", default=None, help="default: cuda if available, else cpu")
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    parser.add_argument("--malloc", default="default", choices=["default", "no-mmap"],
                        help="glibc allocator settings for the CPU cases (see module docstring)")
    parser.add_argument("--case", nargs=3, metavar=("KIND", "NATOMS", "BATCH"),
                        help=argparse.SUPPRESS)   # internal: run one case in this process
    args = parser.parse_args(argv)

    import torch
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")

    if args.case:
        kind, natoms, batch = args.case[0], int(args.case[1]), int(args.case[2])
        print(json.dumps(run_case(kind, natoms, batch, args.repeats, device, args.dtype)))
        return

    if args.quick:
        cases = [("slab", 32, 1)]
        args.repeats = min(args.repeats, 2)
    else:
        cases = [(k, n, b) for b in (1, 16) for k in ("slab", "bulk") for n in (32, 64, 128, 256)]
    records = []
    for kind, natoms, batch in cases:
        cmd = [sys.executable, __file__, "--case", kind, str(natoms), str(batch),
               "--repeats", str(args.repeats), "--device", device, "--dtype", args.dtype]
        if args.threads is not None:
            cmd += ["--threads", str(args.threads)]
        env = dict(os.environ)
        if args.malloc == "no-mmap":
            env.update(MALLOC_MMAP_MAX_="0", MALLOC_TRIM_THRESHOLD_=str(10**11))
        result = subprocess.run(cmd, capture_output=True, text=True, check=False, env=env)
        if result.returncode != 0:
            raise SystemExit(f"case {kind} {natoms} {batch} failed:\n{result.stderr}")
        records.append(json.loads(result.stdout.strip().splitlines()[-1]))
        records[-1]["malloc"] = args.malloc
        print(f"{kind:4s} natoms={natoms:4d} batch={batch:2d} "
              f"fwd={records[-1]['forward_ms']:9.1f} ms  fwd+bwd={records[-1]['fwd_bwd_ms']:9.1f} ms  "
              f"mem={records[-1]['peak_mem_MB']:8.1f} MB", file=sys.stderr)
    print(json.dumps(records, indent=1))


if __name__ == "__main__":
    main()
