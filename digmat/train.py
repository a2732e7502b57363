"""One trainer for every digmat model: EMA, atomic checkpoints, exact resume, JSON-lines log, DDP.

The trainer is model- and system-agnostic: it needs a ``torch.nn.Module``, a dataset
(``len`` + ``__getitem__``), a ``collate`` function and a ``loss_fn(model, batch, generator)``
returning a scalar. Everything random is a pure function of ``(seed, step, rank)``:

* the data order is a stream of seeded per-epoch permutations; global step ``k`` takes
  positions ``[k B, (k+1) B)`` of it and rank ``r`` of ``W`` takes every W-th of those;
  with ``TrainConfig.groups_per_batch = G`` (datasets with a ``groups`` attribute, e.g. the
  systems of an adsorption corpus) step ``k`` instead takes groups ``[k G, (k+1) G)`` of a
  stream of permutations of the groups and ``B / G`` items of each, read from that group's
  own stream of permutations (:func:`grouped_batch_indices`);
* the loss's generator and torch's global seed are re-seeded from ``(seed, step, rank)``,

so a run killed at any point and resumed from its last checkpoint reproduces the
uninterrupted run bit for bit, on CPU with any fixed number of threads (tested with 1 and 2).
Each step runs under ``torch.use_deterministic_algorithms(True, warn_only=True)`` (restored
afterwards; ``Trainer(deterministic=False)`` opts out): without it the backward of tensor
indexing (``x[index]``, an ``index_put_`` with accumulation) adds into shared rows from several
threads in a varying order, and two identical 2-thread runs of the adsorption model drift apart
(3.2e-4 in the weights after 10 steps, 7.6e-4 after 60; measured in ``docs/adsorb.md``).
Limits: runs agree exactly only with the same thread count, device, torch build and world size
(another thread count splits reductions differently: 1 and 2 threads differed by 3.1e-4
after 10 steps);
on CUDA bit-identity is untested here and also needs ``CUBLAS_WORKSPACE_CONFIG=:4096:8`` set
before CUDA starts (torch warns otherwise).

Under ``torchrun`` the model is wrapped in ``DistributedDataParallel`` (gloo on CPU, NCCL on
CUDA), the global batch is split over ranks, and only rank 0 writes checkpoints and logs.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn

from .checkpoint import load_checkpoint, save_checkpoint

__all__ = ["TrainConfig", "EMA", "DistContext", "distributed_context", "deterministic_algorithms", "Trainer"]


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings.

    Parameters
    ----------
    steps
        Optimizer steps in total.
    batch_size
        Global batch size (summed over DDP ranks; must be divisible by the world size).
    lr, lr_min_ratio, warmup_steps
        AdamW learning rate, linear warm-up then cosine decay to ``lr * lr_min_ratio``.
    grad_clip
        Max global gradient norm (``None``: no clipping).
    ema_decay
        Decay of the exponential moving average of the weights used for sampling.
    log_every, checkpoint_every
        Steps between log lines and between checkpoints.
    groups_per_batch
        0: every batch is drawn from the whole dataset. G > 0: every batch holds
        ``batch_size / G`` items of each of G groups (the dataset's ``groups``: one group id
        per item, e.g. its system), every group visited equally often. Fewer groups per
        batch means fewer per-group operations in a step: 4 systems instead of ~29 trained the
        adsorption model 1.9x faster (median steps/s) on one CPU thread (``docs/adsorb.md``).
    """

    steps: int = 10_000
    batch_size: int = 32
    lr: float = 3e-4
    lr_min_ratio: float = 0.1
    warmup_steps: int = 200
    weight_decay: float = 0.0
    grad_clip: float | None = 1.0
    ema_decay: float = 0.999
    log_every: int = 50
    checkpoint_every: int = 1000
    seed: int = 0
    groups_per_batch: int = 0

    def __post_init__(self) -> None:
        if self.steps < 1 or self.batch_size < 1:
            raise ValueError("steps and batch_size must be >= 1")
        if self.groups_per_batch < 0 or (self.groups_per_batch and self.batch_size % self.groups_per_batch):
            raise ValueError(f"groups_per_batch {self.groups_per_batch} must be 0 or divide batch_size {self.batch_size}")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ValueError(f"ema_decay must lie in [0, 1), got {self.ema_decay}")
        if self.lr <= 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")


class EMA:
    """Exponential moving average of a module's floating-point parameters and buffers."""

    def __init__(self, model: nn.Module, decay: float):
        self.decay = decay
        self.shadow = {k: v.detach().clone() for k, v in model.state_dict().items()}

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        for k, v in model.state_dict().items():
            if v.is_floating_point():
                self.shadow[k].lerp_(v.detach(), 1.0 - self.decay)
            else:
                self.shadow[k].copy_(v)

    def state_dict(self) -> dict[str, Tensor]:
        return self.shadow

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        for k, v in state.items():
            self.shadow[k].copy_(v)


@dataclass(frozen=True)
class DistContext:
    """Where this process sits in a (possibly single-process) run."""

    rank: int
    world_size: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def distributed_context(device: str | torch.device | None = None) -> DistContext:
    """Initialise torch.distributed when launched by ``torchrun`` (WORLD_SIZE > 1).

    Uses NCCL when CUDA is available and the device is CUDA, gloo otherwise.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(device)
    if world > 1:
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        if device.type == "cuda":
            device = torch.device("cuda", local_rank)
            torch.cuda.set_device(device)
        if not dist.is_initialized():
            dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
        return DistContext(rank=dist.get_rank(), world_size=dist.get_world_size(), device=device)
    return DistContext(rank=0, world_size=1, device=device)


@contextmanager
def deterministic_algorithms(enabled: bool = True) -> Iterator[None]:
    """Run the block with torch's deterministic kernels; the previous setting is restored after.

    Parameters
    ----------
    enabled
        False leaves torch's setting as it is.  An existing setting (strict or warn-only) is
        kept; otherwise the block runs with ``use_deterministic_algorithms(True, warn_only=True)``,
        so an operation without a deterministic kernel warns instead of failing.
    """
    if not enabled or torch.are_deterministic_algorithms_enabled():
        yield
        return
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(False)


def _mix_seed(*parts: int) -> int:
    """A well-spread 63-bit seed from integers (SplitMix64 finaliser)."""
    h = 0x9E3779B97F4A7C15
    for p in parts:
        h ^= (p + 0x9E3779B97F4A7C15 + (h << 6) + (h >> 2)) & 0xFFFFFFFFFFFFFFFF
        h = ((h ^ (h >> 30)) * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
        h = ((h ^ (h >> 27)) * 0x94D049BB133111EB) & 0xFFFFFFFFFFFFFFFF
        h ^= h >> 31
    return h & 0x7FFFFFFFFFFFFFFF


def _stream(start: int, stop: int, num_items: int, seed: int) -> list[tuple[int, int]]:
    """Positions ``[start, stop)`` of a stream of seeded per-epoch permutations of
    ``range(num_items)``, as (epoch, item) pairs."""
    out: list[tuple[int, int]] = []
    pos = start
    while pos < stop:
        epoch, offset = divmod(pos, num_items)
        take = min(stop - pos, num_items - offset)
        perm = torch.randperm(num_items, generator=torch.Generator().manual_seed(_mix_seed(seed, epoch)))
        out.extend((epoch, i) for i in perm[offset : offset + take].tolist())
        pos += take
    return out


def batch_indices(step: int, *, size: int, num_items: int, seed: int, rank: int = 0, world_size: int = 1) -> list[int]:
    """Dataset indices of ``rank``'s share of the global batch at ``step`` (a pure function)."""
    return [i for _, i in _stream(step * size, (step + 1) * size, num_items, seed)][rank::world_size]


def grouped_batch_indices(step: int, *, size: int, groups: Sequence[Sequence[int]], per_batch: int, seed: int,
                          rank: int = 0, world_size: int = 1) -> list[int]:
    """Dataset indices of ``rank``'s share of the global batch at ``step``: ``size / per_batch``
    items from each of ``per_batch`` groups (a pure function).

    Groups are taken in a stream of per-epoch permutations of the groups, so in every group
    epoch each group is visited once; on its e-th visit a group gives the items at positions
    ``[e m, (e+1) m)`` of its own stream of permutations (m = size / per_batch), so every item
    of a group is used once before any is used twice.
    """
    m = size // per_batch
    out: list[int] = []
    for visit, g in _stream(step * per_batch, (step + 1) * per_batch, len(groups), seed):
        members = groups[g]
        out.extend(members[i] for _, i in _stream(visit * m, (visit + 1) * m, len(members), _mix_seed(seed, g + 1)))
    return out[rank::world_size]


class Trainer:
    """Train ``model`` by minimising ``loss_fn`` over ``dataset``.

    Parameters
    ----------
    model
        The network (unwrapped; the trainer wraps it in DDP when distributed).
    loss_fn
        ``loss_fn(model, batch, generator) -> scalar Tensor``; ``generator`` is a CPU
        ``torch.Generator`` seeded per (step, rank).
    dataset
        Any sized, indexable collection of training items.
    collate
        Turns a list of items into a batch on ``device`` (``collate(items, device)``).
    config
        :class:`TrainConfig`.
    out_dir
        Holds ``checkpoint.pt`` (latest, with training state), ``model.pt`` (final
        weights + EMA, no training state) and ``log.jsonl``.
    model_config
        The model's configuration as plain data (stored in checkpoints).
    metadata
        Extra facts stored in checkpoints (data source, system kind, ...).
    deterministic
        Run each step under :func:`deterministic_algorithms` (default), so that identical
        runs, and a resumed run and an uninterrupted one, agree bit for bit with the same
        thread count; False lets torch pick its faster nondeterministic kernels.
    """

    def __init__(
        self,
        model: nn.Module,
        loss_fn: Callable[[nn.Module, Any, torch.Generator], Tensor],
        dataset: Sequence,
        collate: Callable[[list, torch.device], Any],
        config: TrainConfig,
        out_dir: str | os.PathLike,
        *,
        model_config: dict[str, Any],
        metadata: dict[str, Any] | None = None,
        context: DistContext | None = None,
        find_unused_parameters: bool = False,
        progress: bool = True,
        deterministic: bool = True,
    ):
        if len(dataset) == 0:
            raise ValueError("the training dataset is empty")
        self.ctx = context or distributed_context()
        if config.batch_size % self.ctx.world_size:
            raise ValueError(f"batch_size {config.batch_size} is not divisible by the world size {self.ctx.world_size}")
        self._groups: list[list[int]] = []
        if config.groups_per_batch:
            ids = getattr(dataset, "groups", None)
            if ids is None or len(ids) != len(dataset):
                raise ValueError("groups_per_batch needs a dataset with a 'groups' attribute (one group id per item)")
            members: dict[int, list[int]] = {}
            for i, g in enumerate(ids):
                members.setdefault(int(g), []).append(i)
            self._groups = [members[g] for g in sorted(members)]
            if config.groups_per_batch > len(self._groups):
                raise ValueError(f"groups_per_batch {config.groups_per_batch} exceeds the dataset's {len(self._groups)} groups")
        self.config = config
        self.loss_fn = loss_fn
        self.dataset = dataset
        self.collate = collate
        self.out_dir = Path(out_dir)
        self.model_config = dict(model_config)
        self.metadata = dict(metadata or {})
        self.progress = progress
        self.deterministic = bool(deterministic)
        self.model = model.to(self.ctx.device)
        self.ema = EMA(self.model, config.ema_decay)
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, self._lr_factor)
        self.step = 0
        self._resumed: dict[str, Any] = {}  # last log record kept on resume
        self.train_model: nn.Module = self.model
        if self.ctx.distributed:
            ids = [self.ctx.device.index] if self.ctx.device.type == "cuda" else None
            self.train_model = nn.parallel.DistributedDataParallel(self.model, device_ids=ids, find_unused_parameters=find_unused_parameters)

    # ------------------------------------------------------------------ schedule
    def _lr_factor(self, step: int) -> float:
        c = self.config
        if step < c.warmup_steps:
            return (step + 1) / c.warmup_steps
        frac = (step - c.warmup_steps) / max(1, c.steps - c.warmup_steps)
        return c.lr_min_ratio + (1 - c.lr_min_ratio) * 0.5 * (1 + math.cos(math.pi * min(1.0, frac)))

    # ------------------------------------------------------------------ checkpoints
    @property
    def checkpoint_path(self) -> Path:
        return self.out_dir / "checkpoint.pt"

    def save(self, path: Path | None = None, *, with_training_state: bool = True) -> Path | None:
        """Write a checkpoint (rank 0 only)."""
        if not self.ctx.is_main:
            return None
        state = None
        if with_training_state:
            state = {"step": self.step, "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(), "train_config": asdict(self.config)}
        meta = {**self.metadata, "step": self.step, "torch": str(torch.__version__), "world_size": self.ctx.world_size}
        return save_checkpoint(
            path or self.checkpoint_path,
            config=self.model_config,
            state_dict=self.model.state_dict(),
            ema_state_dict=self.ema.state_dict(),
            metadata=meta,
            training_state=state,
        )

    def resume(self) -> bool:
        """Restore the latest checkpoint in ``out_dir`` if there is one; True if resumed."""
        if not self.checkpoint_path.is_file():
            return False
        ckpt = load_checkpoint(self.checkpoint_path, map_location=self.ctx.device)
        state = ckpt["training_state"]
        if state is None:
            raise ValueError(f"{self.checkpoint_path} has no training state to resume from")
        if state["train_config"] != asdict(self.config):
            ours = asdict(self.config)
            differ = ", ".join(f"{k} {state['train_config'].get(k)!r} there, {ours.get(k)!r} now" for k in sorted(set(ours) | set(state["train_config"]))
                               if state["train_config"].get(k) != ours.get(k))
            raise ValueError(f"{self.checkpoint_path} was written with different training settings ({differ}); "
                             "rerun with the same settings to resume, or use a new output directory")
        self.model.load_state_dict(ckpt["state_dict"])
        self.ema.load_state_dict(ckpt["ema_state_dict"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.step = int(state["step"])
        if self.ctx.is_main:
            self._truncate_log(self.step)
        return True

    def _truncate_log(self, step: int) -> None:
        """Drop records past ``step``; the last one kept becomes :attr:`_resumed` (its clock continues)."""
        log = self.out_dir / "log.jsonl"
        if log.is_file():
            kept = [line for line in log.read_text().splitlines() if line.strip() and json.loads(line).get("step", 0) <= step]
            log.write_text("".join(line + "\n" for line in kept))
            self._resumed = json.loads(kept[-1]) if kept else {}

    def _log(self, record: dict[str, Any]) -> None:
        if self.ctx.is_main:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            with open(self.out_dir / "log.jsonl", "a") as fh:
                fh.write(json.dumps(record) + "\n")

    # ------------------------------------------------------------------ loop
    def train_step(self) -> float:
        """One optimizer step on this rank's share of the global batch; returns the loss."""
        with deterministic_algorithms(self.deterministic):
            return self._train_step()

    def _train_step(self) -> float:
        c, ctx = self.config, self.ctx
        if c.groups_per_batch:
            idx = grouped_batch_indices(self.step, size=c.batch_size, groups=self._groups, per_batch=c.groups_per_batch, seed=c.seed,
                                        rank=ctx.rank, world_size=ctx.world_size)
        else:
            idx = batch_indices(self.step, size=c.batch_size, num_items=len(self.dataset), seed=c.seed, rank=ctx.rank, world_size=ctx.world_size)
        batch = self.collate([self.dataset[i] for i in idx], ctx.device)
        seed = _mix_seed(c.seed, self.step, ctx.rank)
        torch.manual_seed(seed)
        generator = torch.Generator().manual_seed(seed)
        self.train_model.train()
        loss = self.loss_fn(self.train_model, batch, generator)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"non-finite loss {float(loss)} at step {self.step}")
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if c.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), c.grad_clip)
        self.optimizer.step()
        self.scheduler.step()
        self.ema.update(self.model)
        self.step += 1
        return float(loss.detach())

    def fit(self, *, resume: bool = True) -> dict[str, Any]:
        """Train until ``config.steps``; resumes from ``out_dir`` when possible.

        Returns the last log record (the resumed one when there was nothing left to do); its
        ``seconds`` count training time across resumes. Writes ``model.pt`` (weights + EMA) at the end.
        """
        from tqdm import tqdm

        c, ctx = self.config, self.ctx
        if resume:
            self.resume()
        last = self._resumed
        t0, window = time.perf_counter() - last.get("seconds", 0.0), []
        bar = tqdm(total=c.steps, initial=self.step, desc="train", disable=not (self.progress and ctx.is_main), dynamic_ncols=True)
        while self.step < c.steps:
            window.append(self.train_step())
            bar.update(1)
            if self.step % c.log_every == 0 or self.step == c.steps:
                mean = torch.tensor(sum(window) / len(window), dtype=torch.float64)
                if ctx.distributed:
                    dist.all_reduce(mean)
                    mean /= ctx.world_size
                elapsed = time.perf_counter() - t0
                last = {"step": self.step, "loss": float(mean), "lr": self.scheduler.get_last_lr()[0], "seconds": round(elapsed, 3)}
                self._log(last)
                bar.set_postfix(loss=f"{float(mean):.4f}")
                window = []
            if self.step % c.checkpoint_every == 0 or self.step == c.steps:
                self.save()
        bar.close()
        if ctx.is_main:
            self.save(self.out_dir / "model.pt", with_training_state=False)
        if ctx.distributed:
            dist.barrier()
        return last
