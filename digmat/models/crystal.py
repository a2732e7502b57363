"""The crystal score model: periodic Graphormer -> noise prediction on a crystal's state.

The network sees the crystal (Cartesian positions, the cell and all lattice images within the
cutoff) and the diffusion time. Its outputs become the noise prediction of the state of
:mod:`digmat.systems.crystal`:

* fractional coordinates: eps_n = (N v0)^(1/3) w_n L^-1, i.e. the equivariant per-atom vector
  w_n projected on the reciprocal vectors (columns of L^-1). The noise is isotropic in
  fractional coordinates (std c sigma_tilde, c = l / (N v0)^(1/3)), so a clean-to-noisy
  displacement d (Å) has eps = d L^-1 / (c sigma_tilde): with this map the network's w_n is
  d / (l sigma_tilde), the Cartesian denoising direction, whatever the cell's shape. (Projecting
  on the lattice vectors a_k instead — the chain rule of a *score* — would make the network
  apply the cell-dependent map (L^T L)^-1 itself; in development that left the positions
  un-denoised.) eps_n is invariant under rotations of the crystal.
* lattice: a symmetric Cartesian tensor pooled over atoms (intensive),

      T = (1/N) sum_i [ sum_j c_ij r_ij r_ij^T / r_c^2 + s_i I ],
      c_ij = u(d_ij) sum_k h_ik h_jk psi_k(d_ij),

  with h_i the per-atom invariant features of the network's scalar head, psi an MLP of the
  radial basis and u the smooth cutoff. T rotates with the crystal (T -> R T R^T); writing the
  cell as L = P U (P = sqrt(L L^T) symmetric, U a rotation), eps_S = U T U^T is invariant and
  equals T in the symmetric gauge L = exp(S) that states decode to. The lattice noise
  prediction is eps_lattice = sigma(t) z_t + vec(eps_S), z_t the state's lattice entries: the
  first term is the exact answer for standardised Gaussian data (E[eps | z_t] = sigma z_t when
  z_0 ~ N(0, 1)), a skip connection that makes even an untrained model contract the lattice
  towards the data at high noise (without it the reverse SDE amplifies the lattice by 1/alpha(1)).

Everything is a sum over atoms and edges of invariant coefficients times displacement vectors,
so the noise prediction is invariant under permutations of equal atoms (permuting the
outputs), rigid translations, lattice translations of single atoms and rotations.

``architecture="cellnet"`` replaces the Graphormer by :class:`digmat.nn.cellnet.CellNet`, a
fully connected network on the state itself (fractional coordinates, the six lattice entries
and the decoded cell), with the same lattice skip term. It sees every atom of the cell and
all lattice images within its cutoff, at the price of N^2 pair features — meant for cells of
up to a few tens of atoms, and for canonical states only (it is not invariant under a change
of lattice basis, which the states already fix).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from digmat.core import NoiseSchedule, ScoreFn
from digmat.nn import AtomsBatch, GraphormerConfig, PeriodicGraphormer
from digmat.nn.cellnet import CellNet, CellNetConfig
from digmat.nn.painn import PaiNN, PaiNNConfig
from digmat.nn.radial import smooth_cutoff
from digmat.systems.crystal import CrystalStateConfig, CrystalSystem, lattice_entries, symmetric_to_vec

__all__ = ["CrystalModelConfig", "CrystalOutput", "CrystalScoreModel"]


def _default_network() -> GraphormerConfig:
    return GraphormerConfig(num_layers=4, embed_dim=64, num_heads=4, ffn_dim=128, num_rbf=32, cutoff=5.0, num_tags=1, num_conditions=0, scalar_out=16, scalar_pool="none")


_NETWORK_CONFIGS = {"graphormer": GraphormerConfig, "cellnet": CellNetConfig, "painn": PaiNNConfig}


def _network_config_class(architecture: str) -> type:
    """The network configuration class of an architecture name; ValueError for an unknown name."""
    if architecture not in _NETWORK_CONFIGS:
        raise ValueError(f"architecture must be one of {tuple(_NETWORK_CONFIGS)}, got {architecture!r}")
    return _NETWORK_CONFIGS[architecture]


@dataclass(frozen=True)
class CrystalModelConfig:
    """Everything needed to rebuild a crystal score model (plain data in checkpoints).

    Parameters
    ----------
    network
        The Graphormer (needs ``scalar_pool == "none"`` and ``scalar_out >= 1``: per-atom
        features of the lattice head; and ``num_conditions == 0``) or a
        :class:`~digmat.nn.cellnet.CellNetConfig`.
    architecture
        ``"graphormer"`` (periodic Graphormer with a cutoff) or ``"cellnet"`` (fully connected
        cell-level network); must match ``network``'s type.
    state
        How crystals become states.
    schedule
        The forward process's noise schedule.
    lattice_weight
        Weight of the (mean) lattice error relative to the (mean) fractional-coordinate error
        in the loss.
    time_power
        Training times are ``t_min + (1 - t_min) u^time_power`` (``u`` uniform): values > 1
        spend more of training at the low noise levels where atoms are placed to within
        tenths of an Å (see :meth:`digmat.core.Diffusion.sample_time`).
    lattice_clip
        The network sees the cell of the lattice entries clipped to [-clip, clip] (state units,
        i.e. multiples of the data's RMS), so that states far outside the data — an
        ill-trained score can throw them there — never build degenerate cells with millions
        of lattice images. The state itself is not changed.
    elements
        Chemical symbols seen in training (empty: no restriction).
    num_atoms
        ``((N, count), ...)``: the training set's distribution of atoms per cell, used to draw
        N when it is not given.
    """

    network: GraphormerConfig | CellNetConfig | PaiNNConfig = field(default_factory=_default_network)
    state: CrystalStateConfig = CrystalStateConfig()
    schedule: NoiseSchedule = NoiseSchedule()
    lattice_weight: float = 1.0
    time_power: float = 1.0
    lattice_clip: float = 5.0
    elements: tuple[str, ...] = ()
    num_atoms: tuple[tuple[int, int], ...] = ()
    architecture: str = "graphormer"

    def __post_init__(self) -> None:
        expected = _network_config_class(self.architecture)
        if not isinstance(self.network, expected):
            raise ValueError(f"architecture {self.architecture!r} needs a {expected.__name__}, got {type(self.network).__name__}")
        if self.architecture == "graphormer" and (self.network.scalar_pool != "none" or self.network.scalar_out < 1):
            raise ValueError("the crystal model needs per-atom scalar features: scalar_pool='none', scalar_out >= 1")
        if self.architecture == "graphormer" and self.network.num_conditions != 0:
            raise ValueError("the crystal model takes no conditions (num_conditions must be 0)")
        if not (self.lattice_weight > 0 and self.lattice_clip > 0 and self.time_power > 0):
            raise ValueError(f"lattice_weight, lattice_clip and time_power must be > 0, got {self.lattice_weight}, {self.lattice_clip}, {self.time_power}")
        hist = tuple((int(n), int(c)) for n, c in self.num_atoms)
        if any(n < 1 or c < 0 for n, c in hist) or (hist and sum(c for _, c in hist) == 0):
            raise ValueError(f"num_atoms must be (N >= 1, count >= 0) pairs with a positive total, got {self.num_atoms}")
        object.__setattr__(self, "num_atoms", hist)
        object.__setattr__(self, "elements", tuple(self.elements))

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["elements"] = list(self.elements)
        d["num_atoms"] = [list(p) for p in self.num_atoms]
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CrystalModelConfig:
        architecture = str(data.get("architecture", "graphormer"))
        network = _network_config_class(architecture).from_dict(data["network"])
        return cls(
            network=network,
            architecture=architecture,
            state=CrystalStateConfig(**data["state"]),
            schedule=NoiseSchedule(**data["schedule"]),
            lattice_weight=float(data.get("lattice_weight", 1.0)),
            time_power=float(data.get("time_power", 1.0)),
            lattice_clip=float(data.get("lattice_clip", 5.0)),
            elements=tuple(data.get("elements", ())),
            num_atoms=tuple(tuple(p) for p in data.get("num_atoms", ())),
        )


@dataclass
class CrystalOutput:
    """Network outputs for a batch of crystals.

    Attributes
    ----------
    frac_eps
        (N, 3) noise prediction of the fractional coordinates.
    lattice_eps
        (B, 6) noise prediction of the lattice entries (symmetric gauge).
    vectors
        (N, 3) the network's Cartesian per-atom vectors (equivariant).
    lattice_tensor
        (B, 3, 3) the Cartesian symmetric tensor T (equivariant).
    """

    frac_eps: Tensor
    lattice_eps: Tensor
    vectors: Tensor
    lattice_tensor: Tensor


class _KeepsNeighbors:
    """Mixin for a network with ``neighbors(batch)``: keeps the list of its last forward pass."""

    def neighbors(self, batch: AtomsBatch):
        nb = super().neighbors(batch)
        self.last_neighbors = nb
        return nb


class _Graphormer(_KeepsNeighbors, PeriodicGraphormer):
    """A PeriodicGraphormer that keeps the neighbour list of its last forward pass."""


class _PaiNN(_KeepsNeighbors, PaiNN):
    """A PaiNN that keeps the neighbour list of its last forward pass."""


class LatticeHead(nn.Module):
    """Symmetric (B, 3, 3) tensor T from per-atom features and edge vectors (see module docstring)."""

    def __init__(self, config: GraphormerConfig | PaiNNConfig):
        super().__init__()
        k = config.scalar_out
        width = config.embed_dim if isinstance(config, GraphormerConfig) else config.width
        self.cutoff = config.cutoff
        self.radial = nn.Sequential(nn.Linear(config.num_rbf, width), nn.SiLU(), nn.Linear(width, k))
        self.isotropic = nn.Linear(k, 1)

    def forward(self, features: Tensor, receivers: Tensor, senders: Tensor, vectors: Tensor, rbf: Tensor, envelope: Tensor, batch: Tensor, natoms: Tensor) -> Tensor:
        coeff = (features[receivers] * features[senders] * self.radial(rbf)).sum(-1) * envelope
        outer = vectors[:, :, None] * vectors[:, None, :] / self.cutoff**2
        eye = torch.eye(3, dtype=features.dtype, device=features.device)
        per_atom = self.isotropic(features)[:, :, None] * eye
        per_atom = per_atom.index_add(0, receivers, coeff[:, None, None] * outer)
        pooled = torch.zeros(natoms.shape[0], 3, 3, dtype=features.dtype, device=features.device).index_add(0, batch, per_atom)
        return pooled / natoms[:, None, None].to(features.dtype)


def _polar_rotation(cell: Tensor) -> Tensor:
    """U of the polar decomposition cell = P U (P symmetric positive definite), (B, 3, 3)."""
    w, _, vh = torch.linalg.svd(cell)
    return w @ vh


class CrystalScoreModel(nn.Module):
    """Noise prediction eps(x_t, t) on the states of any :class:`CrystalSystem`."""

    def __init__(self, config: CrystalModelConfig = CrystalModelConfig()):
        super().__init__()
        self.config = config
        if config.architecture == "cellnet":
            self.network = CellNet(config.network)
        else:
            self.network = _PaiNN(config.network) if config.architecture == "painn" else _Graphormer(config.network)
            self.lattice_head = LatticeHead(config.network)

    # ------------------------------------------------------------------ checks and systems
    def system(self, numbers: Sequence[int]) -> CrystalSystem:
        """The :class:`CrystalSystem` of a composition under this model's state convention."""
        system = CrystalSystem(numbers, self.config.state)
        if self.config.elements:
            from ase.data import chemical_symbols

            unknown = sorted({chemical_symbols[z] for z in system.numbers} - set(self.config.elements))
            if unknown:
                raise ValueError(f"the model was not trained on {', '.join(unknown)} (it knows {', '.join(self.config.elements)})")
        return system

    def draw_num_atoms(self, num: int, *, generator: torch.Generator | None = None) -> list[int]:
        """``num`` atom counts drawn from the training distribution ``config.num_atoms``."""
        if not self.config.num_atoms:
            raise ValueError("the model has no atom-count distribution (config.num_atoms); give the number of atoms")
        sizes = torch.tensor([n for n, _ in self.config.num_atoms])
        probs = torch.tensor([c for _, c in self.config.num_atoms], dtype=torch.float64)
        idx = torch.multinomial(probs, num, replacement=True, generator=generator)
        return sizes[idx].tolist()

    # ------------------------------------------------------------------ forward
    def outputs(self, batch: AtomsBatch, t: Tensor, *, lattice_state: Tensor | None = None) -> CrystalOutput:
        """Noise predictions for a batch of crystals given as Cartesian structures.

        Parameters
        ----------
        batch
            Crystals (pbc on all axes), any orientation, positions in Å.
        t
            (B,) diffusion times.
        lattice_state
            (B, 6) the states' lattice entries when every cell is the symmetric-gauge cell of a
            state (as in :meth:`forward`): then U = I and no decomposition is needed, keeping the
            output smooth in the state. None: computed from the cells (any orientation).
        """
        if not bool(batch.pbc.all()):
            raise ValueError("crystals must be periodic along all three cell vectors")
        if self.config.architecture == "cellnet":
            raise ValueError("outputs() on Cartesian batches needs a network with a neighbour list; a 'cellnet' model works on states (forward)")
        out = self.network(batch, t)
        nb = self.network.last_neighbors
        self.network.last_neighbors = None
        rbf = self.network.rbf(nb.distances)
        envelope = smooth_cutoff(nb.distances, self.config.network.cutoff)
        tensor = self.lattice_head(out.scalars, nb.receivers, nb.senders, nb.vectors, rbf, envelope, batch.batch, batch.natoms)
        gauge = tensor
        if lattice_state is None:
            u = _polar_rotation(batch.cell)
            gauge = u @ tensor @ u.transpose(1, 2)
            lattice_state = lattice_entries(batch.cell, batch.natoms, self.config.state)
        ref_length = (batch.natoms.to(batch.dtype) * self.config.state.volume_per_atom) ** (1.0 / 3.0)
        recip = torch.linalg.inv(batch.cell)  # (B, 3, 3), columns = reciprocal vectors (no 2 pi)
        frac = torch.einsum("nj,njk->nk", out.vectors, recip[batch.batch]) * ref_length[batch.batch, None]
        skip = self.config.schedule.sigma(t)[:, None].to(lattice_state) * lattice_state
        return CrystalOutput(frac_eps=frac, lattice_eps=skip + symmetric_to_vec(gauge), vectors=out.vectors, lattice_tensor=tensor)

    def forward(self, groups: Sequence[tuple[CrystalSystem, Tensor, Tensor]]) -> list[Tensor]:
        """Noise predictions for several systems in one network pass.

        Parameters
        ----------
        groups
            ``(system, states (B_g, D_g), t (B_g,))`` per system.

        Returns
        -------
        One eps tensor (B_g, D_g) per group.
        """
        param = next(self.network.parameters())
        if self.config.architecture == "cellnet":
            return [self._cellnet_eps(system, x, t) for system, x, t in groups]
        pieces = []
        clip = self.config.lattice_clip
        lattice = []
        for system, x, _ in groups:
            n3 = 3 * system.num_atoms
            lattice.append(x[:, n3:].to(param.dtype))  # the skip term sees the unclipped entries
            x = torch.cat([x[:, :n3], x[:, n3:].clamp(-clip, clip)], dim=1)
            pos, cell = system.structure(x.to(param.dtype))
            pieces.append(_crystal_batch(system, pos, cell))
        batch = AtomsBatch.concat(pieces)
        t_all = torch.cat([t for _, _, t in groups]).to(param)
        out = self.outputs(batch, t_all, lattice_state=torch.cat(lattice))
        result, atom0, sys0 = [], 0, 0
        for system, x, _ in groups:
            b, n = x.shape[0], system.num_atoms
            frac = out.frac_eps[atom0 : atom0 + b * n].reshape(b, 3 * n)
            result.append(torch.cat([frac, out.lattice_eps[sys0 : sys0 + b]], dim=1).to(x.dtype))
            atom0, sys0 = atom0 + b * n, sys0 + b
        return result

    def _cellnet_eps(self, system: CrystalSystem, x: Tensor, t: Tensor) -> Tensor:
        """Noise prediction (B, D) of the cell-level network for states (B, D) of one system."""
        param = next(self.network.parameters())
        states = x.to(param.dtype)
        n3 = 3 * system.num_atoms
        lattice = states[:, n3:]
        clipped = torch.cat([states[:, :n3], lattice.clamp(-self.config.lattice_clip, self.config.lattice_clip)], dim=1)
        frac, lat = system.split(clipped)
        _, cell = system.structure(clipped)
        numbers = torch.as_tensor(system.numbers, device=param.device)
        frac_out, lattice_out = self.network(numbers, frac, cell, lat, t.to(param))
        skip = self.config.schedule.sigma(t.to(param))[:, None] * lattice
        return torch.cat([frac_out.reshape(x.shape[0], n3), skip + lattice_out], dim=1).to(x.dtype)

    def eps(self, system: CrystalSystem, states: Tensor, t: Tensor) -> Tensor:
        """Noise prediction (B, D) for states (B, D) of one system at times t (B,)."""
        return self([(system, states, t)])[0]

    def score_fn(self, system: CrystalSystem) -> ScoreFn:
        """The score (x, t) -> grad log p_t(x) on ``system``'s states, for the core samplers."""
        diffusion = system.diffusion(self.config.schedule)

        def score(x: Tensor, t: Tensor) -> Tensor:
            return diffusion.eps_to_score(self.eps(system, x, t), t)

        return score

    def time_of_noise(self, noise: float | Sequence[float]) -> Tensor:
        """Diffusion time(s) at which the positional noise is ``noise`` Å (float64, shape of ``noise``)."""
        return self.config.schedule.t_of_sigma_tilde(torch.as_tensor(noise, dtype=torch.float64) / self.config.state.length_scale)

    # ------------------------------------------------------------------ checkpoints
    @classmethod
    def from_payload(cls, ckpt: dict[str, Any], *, ema: bool = True) -> CrystalScoreModel:
        """A model (EMA weights by default, eval mode, ``.metadata``) from a loaded checkpoint payload."""
        from digmat.checkpoint import model_from_payload

        return model_from_payload(cls, CrystalModelConfig, ckpt, ema=ema, what="crystal model")

    @classmethod
    def from_checkpoint(cls, path, *, ema: bool = True, map_location: str | torch.device = "cpu") -> CrystalScoreModel:
        """Load a model (EMA weights by default, eval mode) with the checkpoint's ``.metadata``.

        ``path``: a checkpoint file or the name of a shipped model (``"carbon24"``);
        :func:`digmat.load_model` loads any kind.
        """
        from digmat.checkpoint import checkpoint_kind, load_checkpoint, resolve_checkpoint

        path = resolve_checkpoint(path)
        ckpt = load_checkpoint(path, map_location=map_location)
        try:
            kind = checkpoint_kind(ckpt)
        except ValueError:
            kind = "crystal"
        if kind != "crystal":
            raise ValueError(f"{path} holds a {kind!r} model, not a crystal model")
        try:
            return cls.from_payload(ckpt, ema=ema)
        except ValueError as exc:
            raise ValueError(f"{path}: {exc}") from None


def _crystal_batch(system: CrystalSystem, positions: Tensor, cell: Tensor) -> AtomsBatch:
    """An AtomsBatch of B crystals of ``system`` at positions (B, N, 3) and cells (B, 3, 3)."""
    b, n, _ = positions.shape
    device = positions.device
    return AtomsBatch(
        positions=positions.reshape(b * n, 3),
        numbers=torch.as_tensor(system.numbers, device=device).repeat(b),
        tags=torch.zeros(b * n, dtype=torch.long, device=device),
        cell=cell,
        pbc=torch.ones(b, 3, dtype=torch.bool, device=device),
        batch=torch.arange(b, device=device).repeat_interleave(n),
        natoms=torch.full((b,), n, dtype=torch.long, device=device),
    )
