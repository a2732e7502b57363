"""A differentiable band-gap predictor: a matgl M3GNet (intensive) on digmat's periodic graphs.

:class:`BandGapPredictor` wraps any matgl model whose PyG forward takes a graph with
``node_type``, ``pos``, ``edge_index``, ``pbc_offshift`` and ``batch`` and returns one number
per structure (M3GNet, MEGNet, ...). The graph is built here from Cartesian positions and the
cell with :func:`digmat.nn.neighbors.periodic_neighbors` (all lattice images within the
model's cutoff, self-edges removed), and the bond vectors are

    r_ij = r_j + n_ij L - r_i,

so the prediction is differentiable with respect to the positions *and* the lattice L (at
fixed Cartesian positions; through a state both move together). The neighbour list is
rebuilt on every call, so predictions on noisy or generated structures are exact.

Output: gap = mean + std * model(graph) in eV, (mean, std) the training targets' statistics.
Saved as a digmat checkpoint (``weights_only`` loading, no network access); a matgl model
directory (``model.pt``, ``state.pt``, ``model.json``) can be loaded with :meth:`from_matgl`.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch
from ase import Atoms
from ase.data import chemical_symbols
from torch import Tensor, nn

from digmat.nn.neighbors import periodic_neighbors

__all__ = ["BandGapPredictor", "FitConfig", "default_m3gnet", "fit_predictor"]

_KIND = "bandgap_predictor"


def default_m3gnet(element_types: Sequence[str] = ("C",), *, cutoff: float = 5.0, threebody_cutoff: float = 4.0, width: int = 64, blocks: int = 3) -> nn.Module:
    """A fresh intensive M3GNet regressor (smooth radial basis, weighted-atom readout)."""
    from matgl.models import M3GNet

    return M3GNet(
        element_types=tuple(element_types), is_intensive=True, readout_type="weighted_atom", cutoff=cutoff, threebody_cutoff=threebody_cutoff,
        dim_node_embedding=width, dim_edge_embedding=width, units=width, nblocks=blocks, use_smooth=True,
    )


class BandGapPredictor(nn.Module):
    """Band gap (eV) of crystals from a matgl model; differentiable in positions and lattice.

    Parameters
    ----------
    model
        A matgl model (e.g. :func:`default_m3gnet`, or one from :meth:`from_matgl`).
    target_mean, target_std
        Affine map of the model's raw output to eV.
    state_attr
        Optional graph-level state passed to the model (e.g. a MEGNet fidelity index).
    """

    def __init__(self, model: nn.Module, *, target_mean: float = 0.0, target_std: float = 1.0, state_attr: Sequence[float] | None = None):
        super().__init__()
        for name in ("element_types", "cutoff"):
            if not hasattr(model, name):
                raise ValueError(f"the model has no {name!r}; expected a matgl model such as M3GNet")
        if not target_std > 0:
            raise ValueError(f"target_std must be > 0, got {target_std}")
        self.model = model
        self.element_types = tuple(model.element_types)
        self.cutoff = float(model.cutoff)
        self.target_mean = float(target_mean)
        self.target_std = float(target_std)
        self.state_attr = None if state_attr is None else [float(v) for v in state_attr]
        self.metadata: dict[str, Any] = {}
        self._index = {chemical_symbols.index(e): k for k, e in enumerate(self.element_types)}

    # ------------------------------------------------------------------ prediction
    def _node_types(self, numbers: Tensor) -> Tensor:
        unknown = sorted({int(z) for z in numbers.tolist()} - set(self._index))
        if unknown:
            raise ValueError(f"the predictor knows {', '.join(self.element_types)}, not {', '.join(chemical_symbols[z] for z in unknown)}")
        return torch.tensor([self._index[int(z)] for z in numbers.tolist()], dtype=torch.long, device=numbers.device)

    def predict(self, positions: Tensor, cell: Tensor, numbers: Tensor | Sequence[int]) -> Tensor:
        """Band gaps (B,) in eV of B crystals with the same atom count N.

        Parameters
        ----------
        positions
            (B, N, 3) or (N, 3) Cartesian positions, Å (may require grad).
        cell
            (B, 3, 3) or (3, 3) lattice vectors as rows, Å (may require grad).
        numbers
            (N,) atomic numbers shared by all B crystals, or (B, N).
        """
        if positions.ndim == 2:
            positions = positions[None]
        if cell.ndim == 2:
            cell = cell[None]
        b, n, _ = positions.shape
        if cell.shape != (b, 3, 3):
            raise ValueError(f"cell must have shape ({b}, 3, 3), got {tuple(cell.shape)}")
        numbers = torch.as_tensor(np.asarray(numbers), device=positions.device)
        numbers = numbers.expand(b, n) if numbers.ndim == 1 else numbers
        if numbers.shape != (b, n):
            raise ValueError(f"numbers must have shape ({n},) or ({b}, {n}), got {tuple(numbers.shape)}")
        if not (torch.isfinite(positions).all() and torch.isfinite(cell).all()):
            raise ValueError("positions or cell contain NaN or inf")
        if bool((torch.linalg.det(cell.detach()).abs() < 1e-6).any()):
            raise ValueError("a cell is singular (zero volume)")
        param = next(self.model.parameters())
        positions, cell = positions.to(param.dtype), cell.to(param.dtype)
        batch = torch.arange(b, device=positions.device).repeat_interleave(n)
        flat = positions.reshape(b * n, 3)
        natoms = torch.full((b,), n, dtype=torch.long, device=positions.device)
        pbc = torch.ones(b, 3, dtype=torch.bool, device=positions.device)
        nb = periodic_neighbors(flat.detach(), cell.detach(), pbc, batch, natoms, self.cutoff)
        keep = (nb.receivers != nb.senders) | (nb.shifts != 0).any(1)
        recv, send, shifts = nb.receivers[keep], nb.senders[keep], nb.shifts[keep]
        order = torch.argsort(recv, stable=True)
        recv, send, shifts = recv[order], send[order], shifts[order]
        offshift = torch.einsum("ek,ekj->ej", shifts.to(cell.dtype), cell[batch[recv]])
        graph = SimpleNamespace(node_type=self._node_types(numbers.reshape(-1)), pos=flat, edge_index=torch.stack([recv, send]),
                                pbc_offshift=offshift, batch=batch, num_graphs=b)
        state = None
        if self.state_attr is not None:
            categorical = bool(getattr(self.model, "_init_args", {}).get("ntypes_state"))  # e.g. a fidelity index
            state = torch.tensor([self.state_attr] * b, dtype=torch.long if categorical else param.dtype, device=param.device)
        raw = self.model(graph, state).reshape(b)
        return self.target_mean + self.target_std * raw

    def predict_atoms(self, structures: Atoms | Sequence[Atoms], *, batch_size: int = 32) -> np.ndarray:
        """Band gaps (M,) in eV of crystals (no gradients)."""
        if isinstance(structures, Atoms):
            structures = [structures]
        param = next(self.model.parameters())
        out = np.empty(len(structures))
        by_size: dict[int, list[int]] = {}
        for i, a in enumerate(structures):
            if not np.asarray(a.pbc).all():
                raise ValueError(f"structure {i} is not periodic along all axes")
            by_size.setdefault(len(a), []).append(i)
        with torch.no_grad():
            for idx in by_size.values():
                for start in range(0, len(idx), batch_size):
                    chunk = idx[start : start + batch_size]
                    pos = torch.tensor(np.stack([structures[i].positions for i in chunk]), dtype=param.dtype)
                    cell = torch.tensor(np.stack([structures[i].cell.array for i in chunk]), dtype=param.dtype)
                    nums = torch.tensor(np.stack([structures[i].numbers for i in chunk]))
                    out[chunk] = self.predict(pos, cell, nums).double().cpu().numpy()
        return out

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | Path, *, metadata: dict[str, Any] | None = None) -> Path:
        """Write a digmat checkpoint (model class, its constructor arguments, weights, target map)."""
        from digmat.checkpoint import save_checkpoint

        args = getattr(self.model, "_init_args", None)
        if args is None:
            raise ValueError("the model has no _init_args (not a matgl model); cannot save its configuration")
        config = {
            "matgl_class": type(self.model).__name__,
            "matgl_kwargs": json.loads(json.dumps(args, default=_jsonable)),
            "target_mean": self.target_mean,
            "target_std": self.target_std,
            "state_attr": self.state_attr,
        }
        meta = {**self.metadata, **(metadata or {}), "kind": _KIND}
        return save_checkpoint(path, config=config, state_dict=self.state_dict(), metadata=meta)

    @classmethod
    def load(cls, path: str | Path) -> BandGapPredictor:
        """Load a predictor written by :meth:`save`, a shipped one by name (``"carbon24_gap"``), or a
        matgl model directory (see :meth:`from_matgl`)."""
        if Path(path).is_dir():
            return cls.from_matgl(path)
        from digmat.checkpoint import load_checkpoint, resolve_checkpoint

        path = resolve_checkpoint(path)
        ckpt = load_checkpoint(path)
        if ckpt["metadata"].get("kind") != _KIND:
            raise ValueError(f"{path} is not a band-gap predictor checkpoint")
        return cls.from_payload(ckpt)

    @classmethod
    def from_payload(cls, ckpt: dict, *, ema: bool = True) -> BandGapPredictor:
        """A predictor (eval mode, ``.metadata``) from a loaded checkpoint payload (predictors
        are trained without EMA weights, so ``ema`` changes nothing)."""
        import matgl.models

        cfg = ckpt["config"]
        model_cls = getattr(matgl.models, cfg["matgl_class"], None)
        if not isinstance(model_cls, type) or not issubclass(model_cls, nn.Module):
            raise ValueError(f"unknown matgl model class {cfg['matgl_class']!r}")
        kwargs = dict(cfg["matgl_kwargs"])
        if "element_types" in kwargs:
            kwargs["element_types"] = tuple(kwargs["element_types"])
        predictor = cls(model_cls(**kwargs), target_mean=cfg["target_mean"], target_std=cfg["target_std"], state_attr=cfg["state_attr"])
        predictor.load_state_dict(ckpt["state_dict"])
        predictor.metadata = dict(ckpt["metadata"])
        return predictor.eval()

    @classmethod
    def from_matgl(cls, directory: str | Path, *, target_mean: float = 0.0, target_std: float = 1.0, state_attr: Sequence[float] | None = None) -> BandGapPredictor:
        """Wrap a matgl model saved in ``directory`` (``model.pt``, ``state.pt``, ``model.json``).

        Only local files are read (never the model hub). The model's output must be the band
        gap in eV after ``target_mean + target_std * output``.
        """
        import importlib

        directory = Path(directory)
        files = {name: directory / name for name in ("model.pt", "state.pt", "model.json")}
        missing = [n for n, p in files.items() if not p.is_file()]
        if missing:
            raise FileNotFoundError(f"{directory} is not a matgl model directory (missing {', '.join(missing)})")
        info = json.loads(files["model.json"].read_text())
        module = info["@module"]
        if not module.startswith("matgl."):
            raise ValueError(f"{directory} holds {module}.{info['@class']}, not a matgl model")
        module = "matgl.models" if module.startswith("matgl.models._") else module
        model_cls = getattr(importlib.import_module(module), info["@class"])
        model = model_cls.load(files)  # the dict form reads exactly these files
        return cls(model, target_mean=target_mean, target_std=target_std, state_attr=state_attr).eval()


def _jsonable(value):
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    raise TypeError(f"cannot store {type(value).__name__} in a checkpoint config")


@dataclass(frozen=True)
class FitConfig:
    """Optimisation settings of :func:`fit_predictor`.

    Attributes
    ----------
    epochs : int
        Passes over the training set (cosine learning rate over all of them).
    batch_size : int
        Structures per step (batches hold structures of one size).
    lr : float
        Peak Adam learning rate.
    seed : int
        Seed of the batch order and of torch.
    time_limit : float, optional
        Stop after the epoch that passes this many seconds.
    """

    epochs: int = 100
    batch_size: int = 16
    lr: float = 2e-3
    seed: int = 0
    time_limit: float | None = None

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if self.time_limit is not None and not self.time_limit > 0:
            raise ValueError(f"time_limit must be > 0 seconds, got {self.time_limit}")


def fit_predictor(
    predictor: BandGapPredictor,
    train: Sequence[Atoms],
    train_gaps: Sequence[float],
    *,
    heldout: Sequence[Atoms] = (),
    heldout_gaps: Sequence[float] = (),
    config: FitConfig = FitConfig(),
    log: Callable[[dict[str, Any]], None] | None = None,
    **overrides: Any,
) -> dict[str, Any]:
    """Train ``predictor`` on (structure, gap) pairs: Adam, L1 loss, cosine learning rate.

    The target statistics (mean, std) of ``train_gaps`` (eV) are set on the predictor first.
    ``config`` holds the optimisation settings; keyword ``overrides`` (``epochs=10``, ...)
    replace its fields. Returns a summary with train and held-out MAE (eV) and stores it in
    ``predictor.metadata``.
    """
    config = replace(config, **overrides) if overrides else config
    epochs, batch_size, lr, seed, time_limit = config.epochs, config.batch_size, config.lr, config.seed, config.time_limit
    gaps = np.asarray(train_gaps, dtype=np.float64)
    if len(train) != len(gaps) or len(gaps) == 0:
        raise ValueError("need one gap per training structure")
    predictor.target_mean = float(gaps.mean())
    predictor.target_std = float(gaps.std()) or 1.0
    param = next(predictor.parameters())
    by_size: dict[int, list[int]] = {}
    for i, a in enumerate(train):
        by_size.setdefault(len(a), []).append(i)
    tensors = {n: (torch.tensor(np.stack([train[i].positions for i in idx]), dtype=param.dtype),
                   torch.tensor(np.stack([train[i].cell.array for i in idx]), dtype=param.dtype),
                   torch.tensor(np.stack([train[i].numbers for i in idx])),
                   torch.tensor(gaps[idx], dtype=param.dtype)) for n, idx in by_size.items()}
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    batches_per_epoch = sum(math.ceil(len(idx) / batch_size) for idx in by_size.values())
    opt = torch.optim.Adam(predictor.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs * batches_per_epoch, eta_min=lr * 0.02)
    t0 = time.perf_counter()
    epoch = 0
    for epoch in range(1, epochs + 1):
        predictor.train()
        plan = [(n, chunk) for n, idx in by_size.items() for chunk in np.array_split(rng.permutation(len(idx)), math.ceil(len(idx) / batch_size))]
        rng.shuffle(plan)
        total = 0.0
        for n, chunk in plan:
            pos, cell, nums, y = (v[torch.as_tensor(chunk)] for v in tensors[n])
            loss = (predictor.predict(pos, cell, nums) - y).abs().mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss.detach()) * len(chunk)
        record = {"epoch": epoch, "train_l1": total / len(gaps), "seconds": round(time.perf_counter() - t0, 1)}
        if log is not None:
            log(record)
        if time_limit is not None and time.perf_counter() - t0 > time_limit:
            break
    predictor.eval()
    summary: dict[str, Any] = {"epochs": epoch, "train_seconds": round(time.perf_counter() - t0, 1), "n_train": len(gaps),
                               "train_mae_ev": float(np.abs(predictor.predict_atoms(train) - gaps).mean())}
    if len(heldout):
        held = np.asarray(heldout_gaps, dtype=np.float64)
        pred = predictor.predict_atoms(heldout)
        summary.update(n_heldout=len(held), heldout_mae_ev=float(np.abs(pred - held).mean()),
                       heldout_mae_baseline_ev=float(np.abs(held - np.median(gaps)).mean()))
    predictor.metadata.update(summary)
    return summary
