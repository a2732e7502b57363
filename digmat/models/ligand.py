"""The ligand-pose score model: message passing over ligand and pocket atoms, read out as
generalised forces on the pose's centroid, orientation and torsions.

Per noisy pose the ligand's heavy atoms (features from :func:`~digmat.ligand.system.ligand_atom_features`
plus Fourier features of the noise level) exchange messages with each other (all pairs) and
receive messages from pocket heavy atoms within ``cutoff`` Å (static pocket features); the
filters are learned functions of distance (Gaussian radial basis, smooth cosine cutoff). Three
heads then give each ligand atom i an equivariant vector f_i^c = Σ_j a_ij^c (r_i − r_j)/|r_i − r_j|
(scalars a from the two atoms' features and their distance, j over pocket and ligand atoms), and
the noise predictions are the generalised forces of those vectors on the state's coordinates —
the projection that turns atomic forces into a rigid body's force, torque and torsional torques:

* centroid ε_t = Σ_i f_i^tr + s(t, |x_t|) x_t, x_t the centroid's offset from the site centre (world
  frame, so it rotates with the complex; the second term, a learned radial pull, is what tells a
  ligand far from every pocket atom where the site is);
* orientation ε_R = Σ_i (r_i − c) × f_i^rot (a world-frame axial vector, the left-action frame of
  :mod:`digmat.core.so3`) — the torque; or, with ``orientation="inertia"``, the least-squares
  angular displacement ω = (I + δ)⁻¹ ⟨(r_i − c) × f_i^rot⟩ of the atomic vectors read as
  displacements (:func:`least_squares_rotation`, I the heavy atoms' inertia tensor per atom):
  the torque alone is I ω, so an elongated ligand's rotation about its long axis (I 3–9× smaller
  on the PoseBusters ligands) reads out that much weaker than the others; with ``alignment`` K > 0
  plus an alignment torque Σ_k α_k(t) u_k × v_k between K ligand frame vectors
  u_k = ⟨c_k(h_i) (r_i − c)⟩ and K pocket frame vectors v_k = ⟨g_k(q_j, |p_j − s|) (p_j − s)⟩ over
  pocket atoms within ``alignment_range`` of the site centre s: the whole pocket's preferred
  orientation of the whole ligand, where the atomic vectors see only contacts within ``cutoff``
  (α starts at zero, so a model warm-started without it starts as that model);
* torsion m ε_m = Σ_i f_i^tor · ∂r_i/∂τ_m, with ∂r_i/∂τ_m = â_m × (r_i − r_k) on the moving side of
  bond j–k minus its mean over heavy atoms (the centroid stays fixed; :class:`~digmat.ligand.PoseSpace`),
  plus a torsion token: an MLP of the bond atoms' features, harmonics of τ_m and the noise level
  (the ligand's own torsional preferences, which the force read-out learns slowly).

With ``vector_features`` each ligand atom also carries equivariant vector channels (PaiNN-style
messages from pocket and ligand atoms, :class:`~digmat.nn.painn.EquivariantUpdate`), read out as a
fourth term of every head's atomic vector: the pairwise read-out sees only distances, the vectors
also the angles between an atom's contacts.

Each is scaled by a learned function of the noise level. The outputs are therefore exactly
E(3)-equivariant (translations and rotations of pocket and ligand together), and at low noise
they have the form of the true score of a Boltzmann density, whose components are these
projections of the forces −∇E/kT.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import torch
from torch import Tensor, nn

from digmat.core import NoiseSchedule, RigidDiffusion, RigidLoss, RigidState, rigid_dsm_loss
from digmat.ligand.system import LigandSystem
from digmat.nn.painn import EquivariantUpdate

__all__ = ["LigandModelConfig", "LigandScoreModel", "least_squares_rotation", "ligand_dsm_loss"]

LIGAND_FEATURES = 20
POCKET_FEATURES = 9
TORSION_HARMONICS = 3
ORIENTATION_READOUTS = ("torque", "inertia")
INERTIA_DAMPING = 0.1  # Å², keeps (I + δ)⁻¹ finite for (near-)linear ligands
# options whose output paths start at zero (parameter-name tags): LigandScoreModel.extended adds them
EXTENSIONS = {"vector_features": ("head_vector.", ".vector_", ".mix."), "alignment": ("align_",)}


@dataclass(frozen=True)
class LigandModelConfig:
    """Everything needed to rebuild a ligand score model (plain data in checkpoints).

    Attributes
    ----------
    width : int
        Hidden features per atom.
    layers : int
        Message-passing layers.
    rbf : int
        Gaussian radial basis functions per distance.
    cutoff : float
        Å, ligand–pocket interaction range.
    ligand_range : float
        Å, the largest ligand–ligand distance the radial basis resolves.
    time_features : int
        Fourier features of log σ̃(t).
    schedule : NoiseSchedule
        Centroid/torsion schedule.
    rotation_sigma : (float, float)
        rad: the range the orientation noise σ_R(t) = σ̃(t) L / r_g is clipped to.
    length_scale : float
        Å, centroid prior std (:class:`LigandSystem`).
    time_power : float
        Training times t = t_min + (1 − t_min)·u^time_power.
    temperature : float
        K, the temperature of the training ensembles (the model samples only this one).
    training_complexes : tuple of str
        Names of the complexes trained on.
    vector_features : bool
        Carry ``width`` equivariant vector channels per ligand atom (PaiNN-style messages and
        update, read out as a fourth contribution to each head's atomic vectors). Off: the
        distance-only network of the first shipped models.
    orientation : {"torque", "inertia"}
        Orientation read-out: the torque of the atomic vectors (the first shipped models), or
        the least-squares rotation they describe (:func:`least_squares_rotation`).
    alignment : int
        K frame-vector pairs of the alignment torque (module docstring); 0: none (the first
        shipped models).
    alignment_range : float
        Å, pocket atoms within this distance of the site centre define its frame vectors.
    """

    width: int = 64
    layers: int = 3
    rbf: int = 24
    cutoff: float = 6.0
    ligand_range: float = 14.0
    time_features: int = 16
    schedule: NoiseSchedule = field(default_factory=NoiseSchedule)
    rotation_sigma: tuple[float, float] = (0.01, 3.0)
    length_scale: float = 3.0
    time_power: float = 1.0
    temperature: float = 300.0
    training_complexes: tuple[str, ...] = ()
    vector_features: bool = False
    orientation: str = "torque"
    alignment: int = 0
    alignment_range: float = 12.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "rotation_sigma", tuple(float(v) for v in self.rotation_sigma))
        object.__setattr__(self, "training_complexes", tuple(self.training_complexes))
        if not 0 < self.rotation_sigma[0] < self.rotation_sigma[1]:
            raise ValueError(f"rotation_sigma must be 0 < min < max, got {self.rotation_sigma}")
        if self.alignment < 0 or self.alignment_range <= 0:
            raise ValueError(f"alignment must be >= 0 and alignment_range > 0, got {self.alignment}, {self.alignment_range}")
        if self.orientation not in ORIENTATION_READOUTS:
            raise ValueError(f"orientation must be one of {ORIENTATION_READOUTS}, got {self.orientation!r}")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["rotation_sigma"] = list(self.rotation_sigma)
        d["training_complexes"] = list(self.training_complexes)
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LigandModelConfig:
        data = dict(data)
        data["schedule"] = NoiseSchedule(**data["schedule"])
        return cls(**data)


def least_squares_rotation(arms: Tensor, vectors: Tensor, damping: float = INERTIA_DAMPING) -> Tensor:
    """The small rotation ω (..., 3) that best explains per-atom displacements ``vectors``.

    Minimises Σ_i |vectors_i − ω × arms_i|² + n δ |ω|²: ω = (I + δ)⁻¹ ⟨arms_i × vectors_i⟩ with
    I = ⟨|a|² 1 − a aᵀ⟩ the inertia tensor per atom (Å²). Rotation-equivariant; exact (δ → 0) for a
    rigid rotation field.

    Parameters
    ----------
    arms : Tensor (..., n, 3)
        Å, atom positions relative to the centre of rotation.
    vectors : Tensor (..., n, 3)
        Displacements (any unit; ω is in that unit per Å).
    damping : float
        δ, Å².
    """
    torque = torch.cross(arms, vectors, dim=-1).mean(-2)
    sq = (arms * arms).sum(-1)[..., None, None]
    eye = torch.eye(3, dtype=arms.dtype, device=arms.device)
    inertia = (sq * eye - arms[..., :, None] * arms[..., None, :]).mean(-3) + damping * eye
    return torch.linalg.solve(inertia, torque[..., None])[..., 0]


def _radial(d: Tensor, num: int, top: float) -> Tensor:
    """Gaussian basis (..., num) of distances d (...) Å on [0, top] with a cosine cutoff at ``top``."""
    centres = torch.linspace(0.0, top, num, dtype=d.dtype, device=d.device)
    width = top / (num - 1)
    envelope = 0.5 * (torch.cos(math.pi * (d / top).clamp(max=1.0)) + 1.0)
    return torch.exp(-0.5 * ((d[..., None] - centres) / width) ** 2) * envelope[..., None]


class _Layer(nn.Module):
    """Messages from pocket atoms (edge list) and ligand atoms (dense), then a residual update.

    With ``vectors``, each ligand atom also carries F vector channels v (PaiNN): pocket atoms send
    c_ij u_ij, ligand atoms c_ij u_ij + b_ij ⊙ v_j (u_ij the unit vector from j to i, c and b
    radial filters times the sender's features), then :class:`~digmat.nn.painn.EquivariantUpdate`
    mixes scalars and vectors. That is what lets an atom see the angles between its contacts —
    the pairwise read-out alone only sees distances.
    """

    def __init__(self, width: int, rbf: int, vectors: bool = False):
        super().__init__()
        self.filter_pocket = nn.Linear(rbf, width, bias=False)
        self.filter_ligand = nn.Linear(rbf, width, bias=False)
        self.value = nn.Linear(width, width, bias=False)
        self.update = nn.Sequential(nn.LayerNorm(3 * width), nn.Linear(3 * width, width), nn.SiLU(), nn.Linear(width, width))
        self.vectors = vectors
        if vectors:
            self.vector_pocket = nn.Linear(rbf, width, bias=False)
            self.vector_ligand = nn.Linear(rbf, 2 * width, bias=False)
            self.vector_value = nn.Linear(width, 2 * width, bias=False)
            self.mix = EquivariantUpdate(width, zero_init=True)

    def forward(self, h: Tensor, v: Tensor | None, q: Tensor, edges: tuple[Tensor, Tensor, Tensor], e_lp: Tensor,
                e_ll: Tensor, unit_lp: Tensor, unit_ll: Tensor) -> tuple[Tensor, Tensor | None]:
        b, i, j = edges
        msg = self.filter_pocket(e_lp) * q[j]
        m_p = torch.zeros_like(h).index_put_((b, i), msg, accumulate=True)
        m_l = torch.einsum("bijf,bjf->bif", self.filter_ligand(e_ll), self.value(h))
        if self.vectors:
            B, n, w = h.shape
            c_p = self.vector_pocket(e_lp) * q[j]  # (E, F)
            dv = torch.zeros(B * n, 3, w, dtype=h.dtype, device=h.device).index_add(
                0, b * n + i, unit_lp[:, :, None] * c_p[:, None, :]).reshape(B, n, 3, w)
            c_l, b_l = (self.vector_ligand(e_ll) * self.vector_value(h)[:, None]).split(w, dim=-1)  # (B, n, n, F)
            dv = dv + torch.einsum("bijf,bijx->bixf", c_l, unit_ll) + torch.einsum("bijf,bjxf->bixf", b_l, v)
            v = v + dv / 8.0
        h = h + self.update(torch.cat([h, m_p / 8.0, m_l / 8.0], -1))
        if self.vectors:
            h, v = self.mix(h, v)
        return h, v


class LigandScoreModel(nn.Module):
    """Noise predictions (ε_x, ε_R) of ligand poses in any pocket (:class:`LigandSystem`)."""

    def __init__(self, config: LigandModelConfig = LigandModelConfig()):
        super().__init__()
        self.config = config
        w, k = config.width, config.rbf
        self.embed_ligand = nn.Sequential(nn.Linear(LIGAND_FEATURES, w), nn.SiLU(), nn.Linear(w, w))
        self.embed_pocket = nn.Sequential(nn.Linear(POCKET_FEATURES, w), nn.SiLU(), nn.Linear(w, w))
        self.time = nn.Sequential(nn.Linear(2 * config.time_features, w), nn.SiLU(), nn.Linear(w, w))
        self.register_buffer("frequencies", torch.exp(torch.linspace(0.0, math.log(50.0), config.time_features)),
                             persistent=False)
        self.layers = nn.ModuleList(_Layer(w, k, config.vector_features) for _ in range(config.layers))
        self.norm = nn.LayerNorm(w)
        self.head_atom = nn.Linear(w, 3 * k)
        self.head_pocket = nn.Linear(w, 3 * k)
        self.head_ligand = nn.Linear(w, 3 * k)
        self.out_scale = nn.Linear(w, 3)
        self.site = nn.Sequential(nn.Linear(w + k, w), nn.SiLU(), nn.Linear(w, 1))
        self.torsion = nn.Sequential(nn.Linear(3 * w + 2 * TORSION_HARMONICS, w), nn.SiLU(), nn.Linear(w, w), nn.SiLU(),
                                     nn.Linear(w, 1))
        nn.init.zeros_(self.out_scale.weight)
        nn.init.constant_(self.out_scale.bias, 0.1)
        if config.vector_features:
            # vectors (B, n, 3, F) → one atomic vector per head; zero at first, so that a model
            # warm-started from a distance-only one (strict=False) starts as that model
            self.head_vector = nn.Linear(w, 3, bias=False)
            nn.init.zeros_(self.head_vector.weight)
        if config.alignment:
            K = config.alignment
            self.align_ligand = nn.Linear(w, K)
            self.align_pocket = nn.Sequential(nn.Linear(w + k, w), nn.SiLU(), nn.Linear(w, K))
            self.align_gain = nn.Linear(w, K)  # α_k(t), zero at first
            nn.init.zeros_(self.align_gain.weight)
            nn.init.zeros_(self.align_gain.bias)

    @classmethod
    def from_payload(cls, ckpt: dict[str, Any], *, ema: bool = True) -> LigandScoreModel:
        """A model (EMA weights by default, eval mode, ``.metadata``) from a loaded checkpoint payload."""
        from digmat.checkpoint import model_from_payload

        return model_from_payload(cls, LigandModelConfig, ckpt, ema=ema, what="ligand model")

    def extended(self, **changes) -> LigandScoreModel:
        """A copy of this model with output paths added: ``vector_features=True`` and/or ``alignment=K``.

        Every new path starts at zero, so the copy computes the same ε as this model until training
        moves it: the way to give a trained model new features without starting over.
        """
        for name, value in changes.items():
            if name not in EXTENSIONS:
                raise ValueError(f"a trained model can be extended by {sorted(EXTENSIONS)}, not {name!r}")
            if getattr(self.config, name):
                raise ValueError(f"this model already has {name} ({getattr(self.config, name)})")
            if not value:
                raise ValueError(f"{name}={value!r} adds nothing")
        bigger = LigandScoreModel(replace(self.config, **changes)).to(next(self.parameters()))
        missing, unexpected = bigger.load_state_dict(self.state_dict(), strict=False)
        new = tuple(tag for name in changes for tag in EXTENSIONS[name])
        if unexpected or not all(any(tag in key for tag in new) for key in missing):
            raise RuntimeError(f"unexpected state-dict difference: missing {missing}, unexpected {unexpected}")
        bigger.metadata = dict(getattr(self, "metadata", {}))
        return bigger.train(self.training)

    def system(self, mol, pocket, center) -> LigandSystem:
        """The :class:`LigandSystem` this model's diffusion uses (its length scale and SO(3) schedule)."""
        from digmat.core.so3 import SO3Schedule

        lo, hi = self.config.rotation_sigma
        return LigandSystem(mol, pocket, center, length_scale=self.config.length_scale,
                            rotation=SO3Schedule(sigma_min=lo, sigma_max=hi))

    def diffusion(self, system: LigandSystem) -> RigidDiffusion:
        return system.diffusion(self.config.schedule)

    def eps(self, system: LigandSystem, state: RigidState, t: Tensor) -> tuple[Tensor, Tensor]:
        """(ε_x (B, 3 + M), ε_R (B, 3)) of noisy poses ``state`` at times ``t`` (B,)."""
        cfg = self.config
        x = state.x
        dt, dev = x.dtype, x.device
        heavy = torch.as_tensor(system.pose.heavy, device=dev)
        r = system.positions(state)[:, heavy]  # (B, n, 3)
        B, n, _ = r.shape
        P = torch.as_tensor(system.pocket_positions, dtype=dt, device=dev)
        # ligand–pocket edges within the cutoff
        d_lp = torch.cdist(r, P[None].expand(B, -1, -1))
        b, i, j = torch.nonzero(d_lp < cfg.cutoff, as_tuple=True)
        vec_lp = r[b, i] - P[j]
        dist_lp = vec_lp.norm(dim=-1).clamp_min(1e-6)
        e_lp = _radial(dist_lp, cfg.rbf, cfg.cutoff)
        vec_ll = r[:, :, None] - r[:, None]
        dist_ll = vec_ll.norm(dim=-1)
        off = ~torch.eye(n, dtype=torch.bool, device=dev)
        e_ll = _radial(dist_ll, cfg.rbf, cfg.ligand_range) * off[None, :, :, None]
        # atoms and noise level
        log_sigma = torch.log(cfg.schedule.sigma_tilde(t).clamp_min(1e-6)).to(dt)
        z = log_sigma[:, None] * self.frequencies.to(dt)
        tfeat = self.time(torch.cat([torch.sin(z), torch.cos(z)], -1))  # (B, w)
        h = self.embed_ligand(torch.as_tensor(system.ligand_features, dtype=dt, device=dev))[None] + tfeat[:, None]
        q = self.embed_pocket(torch.as_tensor(system.pocket_features, dtype=dt, device=dev))
        unit_lp = vec_lp / dist_lp[:, None]
        unit_ll = vec_ll / dist_ll.clamp_min(1e-6)[..., None]
        v = torch.zeros(B, n, 3, cfg.width, dtype=dt, device=dev) if cfg.vector_features else None
        for layer in self.layers:
            h, v = layer(h, v, q, (b, i, j), e_lp, e_ll, unit_lp, unit_ll)
        h = self.norm(h)
        # per-atom vectors of three heads: pairwise scalars times unit vectors
        k = cfg.rbf
        A = self.head_atom(h).reshape(B, n, 3, k)
        a_lp = (A[b, i] * self.head_pocket(q).reshape(-1, 3, k)[j] * e_lp[:, None]).sum(-1)  # (E, 3)
        f = torch.zeros(B, n, 3, 3, dtype=dt, device=dev).index_put_(
            (b, i), a_lp[:, :, None] * unit_lp[:, None], accumulate=True)
        Hl = self.head_ligand(h).reshape(B, n, 3, k)
        a_ll = torch.einsum("bick,bjck,bijk->bijc", A, Hl, e_ll)
        f = f + torch.einsum("bijc,bijx->bicx", a_ll, unit_ll)  # (B, n, head, 3)
        if v is not None:
            f = f + self.head_vector(v).transpose(-1, -2)
        scale = self.out_scale(tfeat)  # (B, 3)
        centroid = r.mean(dim=1, keepdim=True)
        # the pull towards the site centre: only it can tell a ligand far from every pocket atom
        # where to go (at high noise the exact ε of the centroid is nearly x itself)
        offset = x[:, :3]
        site = self.site(torch.cat([tfeat, _radial(offset.norm(dim=1) * cfg.length_scale, k, 4 * cfg.ligand_range)], -1))
        eps_t = f[:, :, 0].sum(1) * scale[:, :1] + site * offset
        if cfg.orientation == "inertia":
            eps_R = least_squares_rotation(r - centroid, f[:, :, 1]) * scale[:, 1:2]
        else:
            eps_R = torch.cross(r - centroid, f[:, :, 1], dim=-1).sum(1) * scale[:, 1:2]
        if cfg.alignment:
            eps_R = eps_R + self._alignment_torque(system, h, q, r - centroid, tfeat)
        eps_tau = self._torsion_forces(system, r, f[:, :, 2]) * scale[:, 2:3] + self._torsion_tokens(system, h, x, tfeat)
        eps_x = torch.cat([eps_t, eps_tau], dim=1)
        return eps_x * self.diffusion(system).flat.uniform_gate(t, eps_x), eps_R

    def _alignment_torque(self, system: LigandSystem, h: Tensor, q: Tensor, arms: Tensor, tfeat: Tensor) -> Tensor:
        """Σ_k α_k(t) u_k × v_k (B, 3): K learned ligand frame vectors u_k (B, K, 3), Å, from the arms
        r_i − c weighted by the atoms' features, against K pocket frame vectors v_k (K, 3), Å, from
        pocket atoms' offsets to the site centre weighted by their features and distance."""
        cfg = self.config
        centre = torch.as_tensor(system.center, dtype=arms.dtype, device=arms.device)
        offsets = torch.as_tensor(system.pocket_positions, dtype=arms.dtype, device=arms.device) - centre
        dist = offsets.norm(dim=-1)
        near = dist < cfg.alignment_range
        radial = _radial(dist[near], cfg.rbf, cfg.alignment_range)  # (P', k), zero at the range
        g = self.align_pocket(torch.cat([q[near], radial], -1)) * radial.sum(-1, keepdim=True)  # (P', K)
        v = torch.einsum("pk,px->kx", g, offsets[near]) / max(int(near.sum()), 1)
        u = torch.einsum("bik,bix->bkx", self.align_ligand(h), arms) / arms.shape[1]
        return torch.einsum("bk,bkx->bx", self.align_gain(tfeat), torch.cross(u, v[None].expand_as(u), dim=-1))

    def _torsion_tokens(self, system: LigandSystem, h: Tensor, x: Tensor, tfeat: Tensor) -> Tensor:
        """Per torsion (B, M): an MLP of the bond's two atoms' features, harmonics of its angle and the
        noise level — the ligand's own torsional preferences, invariant by construction."""
        if system.num_torsions == 0:
            return x.new_zeros(x.shape[0], 0)
        axes = torch.as_tensor(system.torsion_axes, device=x.device)
        k = torch.arange(1, TORSION_HARMONICS + 1, dtype=x.dtype, device=x.device)
        phase = x[:, 3:, None] * k  # (B, M, H)
        feats = torch.cat([h[:, axes[:, 0]], h[:, axes[:, 1]], tfeat[:, None].expand(-1, system.num_torsions, -1),
                           torch.sin(phase), torch.cos(phase)], -1)
        return self.torsion(feats).squeeze(-1)

    @staticmethod
    def _torsion_forces(system: LigandSystem, r: Tensor, f: Tensor) -> Tensor:
        """Σ_i f_i · ∂r_i/∂τ_m (B, M) for heavy-atom positions r and vectors f (B, n, 3)."""
        if system.num_torsions == 0:
            return r.new_zeros(r.shape[0], 0)
        axes = torch.as_tensor(system.torsion_axes, device=r.device)
        moving = torch.as_tensor(system.torsion_moving, dtype=r.dtype, device=r.device)  # (M, n)
        a, k = r[:, axes[:, 0]], r[:, axes[:, 1]]  # (B, M, 3)
        u = (k - a) / (k - a).norm(dim=-1, keepdim=True)
        lever = torch.cross(u[:, :, None].expand(-1, -1, r.shape[1], -1), r[:, None] - k[:, :, None], dim=-1)
        lever = lever * moving[None, :, :, None]  # (B, M, n, 3)
        lever = lever - lever.mean(dim=2, keepdim=True)
        return torch.einsum("bmnx,bnx->bm", lever, f)

    def forward(self, system: LigandSystem, state: RigidState, t: Tensor) -> tuple[Tensor, Tensor]:
        """:meth:`eps` (so that DDP wraps the model)."""
        return self.eps(system, state, t)

    def score_fn(self, system: LigandSystem):
        """``(state, t) -> (score_x, score_R)`` for :func:`digmat.core.sample_rigid_sde`."""
        diffusion = self.diffusion(system)

        def score(state: RigidState, t: Tensor) -> tuple[Tensor, Tensor]:
            return diffusion.eps_to_score(*self.eps(system, state, t), t)

        return score


def ligand_dsm_loss(model: nn.Module, system: LigandSystem, state0: RigidState, *, t: Tensor | None = None,
                    weights: Tensor | None = None, rotation_weight: float = 1.0,
                    generator: torch.Generator | None = None) -> RigidLoss:
    """Denoising score matching (ε form) of clean poses ``state0`` of one complex (at times ``t`` (B,)
    if given, else drawn from the model's ``time_power``)."""
    core = model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model
    return rigid_dsm_loss(core.diffusion(system), lambda s, tt: model(system, s, tt), state0, t=t, time_power=core.config.time_power,
                          rotation_weight=rotation_weight, weights=weights, generator=generator)
