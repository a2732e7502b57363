"""The periodic Graphormer score network of DiG."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from digmat.nn.attention import TransformerBlock
from digmat.nn.batch import AtomsBatch
from digmat.nn.config import GraphormerConfig
from digmat.nn.encoder import AtomEncoder
from digmat.nn.heads import ScalarHead, VectorHead
from digmat.nn.neighbors import Neighbors, periodic_neighbors
from digmat.nn.radial import GaussianRBF, smooth_cutoff


@dataclass(frozen=True)
class GraphormerOutput:
    """Result of :meth:`PeriodicGraphormer.forward`.

    Attributes
    ----------
    vectors
        ``(N, 3)`` equivariant per-atom vectors; zero where ``vector_mask`` is False.
    scalars
        Invariant outputs: ``(B, scalar_out)`` when pooled, ``(N, scalar_out)``
        when ``scalar_pool == "none"``, ``None`` when ``scalar_out == 0``.
    """

    vectors: torch.Tensor
    scalars: torch.Tensor | None


class PeriodicGraphormer(nn.Module):
    """Graphormer over atoms and their lattice images with equivariant vector output.

    Every real atom is a query; keys and values are all atoms and lattice images
    within ``config.cutoff`` (images carry their home atom's features).
    Attention logits get a per-head bias from a radial basis of the distance and
    the log of a smooth cutoff, so the network is local, continuous in the
    positions and gives identical per-atom outputs for a cell and its supercells.

    Parameters
    ----------
    config
        Hyper-parameters; see :class:`GraphormerConfig`.

    Examples
    --------
    >>> from ase.build import bulk
    >>> model = PeriodicGraphormer(GraphormerConfig(num_layers=2, embed_dim=32, num_heads=4))
    >>> batch = AtomsBatch.from_atoms([bulk("Pt", cubic=True)])
    >>> model(batch, t=torch.tensor([0.5])).vectors.shape
    torch.Size([4, 3])
    """

    def __init__(self, config: GraphormerConfig) -> None:
        super().__init__()
        if not isinstance(config, GraphormerConfig):
            raise ValueError(f"config must be a GraphormerConfig, got {type(config).__name__}")
        self.config = config
        self.rbf = GaussianRBF(config.num_rbf, config.cutoff)
        self.encoder = AtomEncoder(config)
        self.edge_bias = nn.Sequential(
            nn.Linear(config.num_rbf, config.embed_dim), nn.SiLU(),
            nn.Linear(config.embed_dim, config.num_layers * config.num_heads))
        self.blocks = nn.ModuleList(TransformerBlock(config) for _ in range(config.num_layers))
        self.final_norm = nn.LayerNorm(config.embed_dim)
        self.vector_head = VectorHead(config)
        self.scalar_head = ScalarHead(config) if config.scalar_out > 0 else None

    def num_parameters(self) -> int:
        """Number of trainable parameters."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad)

    def neighbors(self, batch: AtomsBatch) -> Neighbors:
        """Edges to all atoms and lattice images within the cutoff (see :mod:`digmat.nn.neighbors`)."""
        return periodic_neighbors(batch.positions, batch.cell, batch.pbc, batch.batch,
                                  batch.natoms, self.config.cutoff)

    def forward(
        self,
        batch: AtomsBatch,
        t: torch.Tensor | float,
        conditions: torch.Tensor | None = None,
        vector_mask: torch.Tensor | None = None,
    ) -> GraphormerOutput:
        """Evaluate the network.

        Parameters
        ----------
        batch
            ``B`` systems with ``N`` atoms in total; dtype and device must match
            the module's parameters.
        t
            ``(B,)`` diffusion times in [0, 1] (a float or 0-d tensor is broadcast).
        conditions
            ``(B, num_conditions)`` conditioning scalars; required exactly when
            ``config.num_conditions > 0``.
        vector_mask
            ``(N,)`` bool; vectors of atoms where it is False are set to zero
            (e.g. fixed subsurface atoms). Default: all atoms.

        Returns
        -------
        GraphormerOutput

        Raises
        ------
        ValueError
            On inputs that do not match the configuration or each other.
        """
        t, conditions, vector_mask = self._check_inputs(batch, t, conditions, vector_mask)
        cfg = self.config
        nb = self.neighbors(batch)
        rbf = self.rbf(nb.distances)
        envelope = smooth_cutoff(nb.distances, cfg.cutoff)
        log_envelope = torch.log(envelope.clamp_min(torch.finfo(envelope.dtype).tiny))

        h = self.encoder(batch.numbers, batch.tags, batch.batch, t, conditions,
                         rbf, envelope, nb.receivers)
        bias = self.edge_bias(rbf).view(-1, cfg.num_layers, cfg.num_heads)
        for layer, block in enumerate(self.blocks):
            h = block(h, nb.receivers, nb.senders, bias[:, layer], log_envelope)
        x = self.final_norm(h)

        vectors = self.vector_head(x, nb.receivers, nb.senders, nb.vectors, rbf, log_envelope)
        if vector_mask is not None:
            vectors = torch.where(vector_mask[:, None], vectors, torch.zeros_like(vectors))
        scalars = None
        if self.scalar_head is not None:
            scalars = self.scalar_head(x, batch.batch, batch.natoms)
        return GraphormerOutput(vectors=vectors, scalars=scalars)

    # ------------------------------------------------------------ validation
    def _check_inputs(
        self,
        batch: AtomsBatch,
        t: torch.Tensor | float,
        conditions: torch.Tensor | None,
        vector_mask: torch.Tensor | None,
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        cfg = self.config
        if not isinstance(batch, AtomsBatch):
            raise ValueError(f"batch must be an AtomsBatch, got {type(batch).__name__}")
        param = next(self.parameters())
        if batch.dtype != param.dtype:
            raise ValueError(
                f"batch dtype {batch.dtype} differs from model dtype {param.dtype}; "
                "use batch.to(dtype=...) or model.to(dtype)")
        if batch.device != param.device:
            raise ValueError(
                f"batch is on {batch.device} but the model on {param.device}; use batch.to(device)")
        nsys, natoms = batch.num_systems, batch.num_atoms
        if int(batch.numbers.min()) < 1 or int(batch.numbers.max()) > cfg.max_z:
            raise ValueError(f"atomic numbers must lie in 1..{cfg.max_z} (config.max_z)")
        if int(batch.tags.min()) < 0 or int(batch.tags.max()) >= cfg.num_tags:
            raise ValueError(
                f"tags must lie in 0..{cfg.num_tags - 1} (config.num_tags); got "
                f"{sorted(set(batch.tags.tolist()))}. OC20: 0 subsurface, 1 surface, 2 adsorbate")

        t = torch.as_tensor(t, dtype=param.dtype, device=param.device)
        if t.ndim == 0:
            t = t.expand(nsys)
        if t.shape != (nsys,):
            raise ValueError(f"t must have shape ({nsys},) (one time per system), got {tuple(t.shape)}")
        if not bool(((t >= 0) & (t <= 1)).all()):
            raise ValueError("diffusion times t must lie in [0, 1]")

        if cfg.num_conditions > 0:
            if conditions is None:
                raise ValueError(
                    f"this model expects conditions of shape ({nsys}, {cfg.num_conditions})")
            conditions = torch.as_tensor(conditions, dtype=param.dtype, device=param.device)
            if conditions.shape != (nsys, cfg.num_conditions):
                raise ValueError(
                    f"conditions must have shape ({nsys}, {cfg.num_conditions}), "
                    f"got {tuple(conditions.shape)}")
            if not bool(torch.isfinite(conditions).all()):
                raise ValueError("conditions contain NaN/inf")
        elif conditions is not None:
            raise ValueError("conditions were given but config.num_conditions is 0")

        if vector_mask is not None:
            vector_mask = torch.as_tensor(vector_mask, device=param.device)
            if vector_mask.dtype != torch.bool or vector_mask.shape != (natoms,):
                raise ValueError(f"vector_mask must be a bool tensor of shape ({natoms},)")
        return t, conditions, vector_mask
