"""Configuration of the periodic Graphormer score network."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

_POOLS = ("sum", "mean", "none")


@dataclass(frozen=True)
class GraphormerConfig:
    """Hyper-parameters of :class:`digmat.nn.PeriodicGraphormer`.

    The configuration is plain data (ints, floats, strings), so a checkpoint can
    store ``config.to_dict()`` next to the ``state_dict`` and be read back with
    ``torch.load(..., weights_only=True)``. It carries no dtype or device; those
    follow the module (``model.double()``, ``model.to("cuda")``).

    Parameters
    ----------
    num_layers
        Number of pre-LN transformer blocks.
    embed_dim
        Width of the per-atom feature vector.
    num_heads
        Attention heads; must divide ``embed_dim``.
    ffn_dim
        Hidden width of the feed-forward sub-layer of each block.
    num_rbf
        Number of Gaussian radial basis functions on ``[0, cutoff]``.
    cutoff
        Attention radius in Å. Every atom attends to all atoms and lattice
        images closer than ``cutoff``; weights vanish smoothly at the cutoff.
    max_z
        Largest atomic number accepted (embedding table has ``max_z + 1`` rows).
    num_tags
        Number of atom roles. OC20 convention: 0 subsurface, 1 surface,
        2 adsorbate. Tags must lie in ``[0, num_tags)``.
    num_conditions
        Number of scalar conditioning inputs per system (e.g. temperature in
        units chosen by the user, a target property). 0 disables conditioning.
        Inputs should be normalised to O(1) by the caller.
    time_embed_dim
        Number of sinusoidal features of the diffusion time ``t`` in [0, 1].
    scalar_out
        Number of invariant outputs of the scalar head (0 disables the head).
    scalar_pool
        ``"sum"`` (extensive, e.g. an energy), ``"mean"`` (intensive) or
        ``"none"`` (per-atom scalars).
    """

    num_layers: int = 6
    embed_dim: int = 128
    num_heads: int = 8
    ffn_dim: int = 512
    num_rbf: int = 32
    cutoff: float = 6.0
    max_z: int = 100
    num_tags: int = 3
    num_conditions: int = 0
    time_embed_dim: int = 64
    scalar_out: int = 1
    scalar_pool: str = "sum"

    def __post_init__(self) -> None:
        positive = ("num_layers", "embed_dim", "num_heads", "ffn_dim", "num_rbf",
                    "max_z", "num_tags", "time_embed_dim")
        for name in positive:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"GraphormerConfig.{name} must be a positive int, got {value!r}")
        for name in ("num_conditions", "scalar_out"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"GraphormerConfig.{name} must be a non-negative int, got {value!r}")
        if self.embed_dim % self.num_heads != 0:
            raise ValueError(
                f"embed_dim ({self.embed_dim}) must be divisible by num_heads ({self.num_heads})")
        if self.time_embed_dim % 2 != 0:
            raise ValueError(f"time_embed_dim must be even, got {self.time_embed_dim}")
        if isinstance(self.cutoff, bool) or not isinstance(self.cutoff, (int, float)) \
                or not self.cutoff > 0:
            raise ValueError(f"cutoff must be a positive number of Å, got {self.cutoff!r}")
        if self.scalar_pool not in _POOLS:
            raise ValueError(f"scalar_pool must be one of {_POOLS}, got {self.scalar_pool!r}")
        object.__setattr__(self, "cutoff", float(self.cutoff))

    @property
    def head_dim(self) -> int:
        """Feature width per attention head."""
        return self.embed_dim // self.num_heads

    def to_dict(self) -> dict[str, Any]:
        """Return the configuration as a JSON-able ``dict``."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GraphormerConfig:
        """Build a configuration from :meth:`to_dict` output.

        Raises
        ------
        ValueError
            If ``data`` has keys that are not fields of the configuration.
        """
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown GraphormerConfig keys: {unknown}")
        return cls(**data)
