"""Denoising profile of a ligand model beside the Bayes-optimal denoiser of its reference ensemble.

A model trained by denoising score matching predicts the noise ε of a noised pose. The best any
predictor can do on a given ensemble is the posterior mean E[ε | noisy pose]; for a weighted set
of reference poses {(x_k, R_k), w_k} it is exact:

    E[ε | y, Q] = Σ_k π_k ε_k(y, Q),   π_k ∝ w_k p_t(y | x_k) f_σR(Q R_kᵀ),

with ε_k = (y − a x_k)/s on the centroid, −s ∂ log WN(y; a x_k, s) on each torsion (the unwrapped
noise's conditional mean) and −σ_R ∇ log f_σR(Q R_kᵀ) on the orientation (IGSO3 density f).
Its mean squared error against the drawn noise is the floor of the training loss at that noise
level (pool = the training poses) — or, with the oracle's pool taken from independent chains of
the reference, the error of a denoiser that knows the ensemble only through other samples of it
(which overstates the floor at low noise, where no other sample lies within the noise).

:func:`denoising_profile` reports, per noise level, the model's and the oracle's errors on the
centroid, orientation and torsion blocks: where the model sits well above the oracle it has
something left to learn; where both are equal, more training cannot help.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from digmat.core import RigidState
from digmat.core.so3 import igso3_log_density, igso3_score
from digmat.core.torus import wrapped_normal_log_prob_and_score
from digmat.tasks.ligand_data import reference_weights

__all__ = ["denoising_profile", "oracle_eps", "reference_states"]


def reference_states(system, folder: str | os.PathLike, *, chains=None,
                     weights: str | None = None) -> tuple[RigidState, torch.Tensor]:
    """Every recorded pose of a reference's ``samples.npz`` as states (float64) and normalised weights.

    ``chains``: indices of the independent chains (second axis of the arrays) to keep; all by default.
    ``weights``: :func:`~digmat.tasks.ligand_data.reference_weights` (None: the reference's own).
    """
    data = np.load(Path(folder) / "samples.npz")
    keep = slice(None) if chains is None else np.asarray(chains)
    w = reference_weights(folder, weights)[:, keep].reshape(-1).astype(np.float64)
    t = data["t"][:, keep].reshape(-1, 3)
    R = data["rotation"][:, keep].reshape(-1, 3, 3)
    tau = data["tau"][:, keep].reshape(len(w), -1)
    state = system.state_of(t, R, tau, dtype=torch.float64)
    return state, torch.as_tensor(w / w.sum())


def oracle_eps(diffusion, noisy: RigidState, t: float, pool: RigidState, pool_weights: torch.Tensor, *,
               chunk: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    """Posterior-mean noise (ε_x (B, D), ε_R (B, 3)) of ``noisy`` states at time ``t`` under the
    weighted ``pool`` of clean states (module docstring), float64."""
    flat = diffusion.flat
    space = flat.space
    tt = torch.tensor([t], dtype=torch.float64)
    a = flat.signal_coef(tt, pool.x[:1])[0]  # (D,): per-entry signal coefficient and noise std
    s = flat.noise_std(tt, pool.x[:1])[0]
    sigma_R = float(diffusion.rotation_sigma(tt))
    torus = space.torus_mask(pool.x)  # (D,)
    period = space.periods(pool.x)[torus]
    mean = a * pool.x  # (N, D)
    log_w = torch.log(pool_weights.clamp_min(1e-300))
    out_x, out_R = [], []
    for start in range(0, len(noisy.x), chunk):
        y = noisy.x[start:start + chunk, None]  # (b, 1, D)
        diff = y - mean[None]  # (b, N, D)
        eps_k = diff / s  # Euclidean entries; the torus ones are replaced below
        logp = -0.5 * (eps_k[..., ~torus] ** 2).sum(-1)  # (b, N); constants cancel in π
        if torus.any():
            lp_t, score_t = wrapped_normal_log_prob_and_score(diff[..., torus], 0.0, s[torus], period)
            logp = logp + lp_t.sum(-1)
            eps_k[..., torus] = -s[torus] * score_t
        rel = noisy.R[start:start + chunk, None] @ pool.R.transpose(-1, -2)[None]  # (b, N, 3, 3)
        logp = logp + igso3_log_density(rel, sigma_R)
        post = torch.softmax(logp + log_w, dim=1)  # (b, N)
        out_x.append(torch.einsum("bn,bnd->bd", post, eps_k))
        out_R.append(torch.einsum("bn,bnd->bd", post, -sigma_R * igso3_score(rel, sigma_R)))
    return torch.cat(out_x), torch.cat(out_R)


def denoising_profile(model, system, data: RigidState, weights: torch.Tensor, times, *,
                      pool: tuple[RigidState, torch.Tensor] | None = None, num: int = 256,
                      seed: int = 0) -> list[dict]:
    """Per time in ``times``: σ̃ (in units of the length scale), σ_R (rad), and the mean squared
    noise-prediction error per entry of the model and of the oracle on the centroid, orientation
    and torsion blocks, over ``num`` poses drawn by weight from ``data`` and noised; and
    ``orientation_detail``: mean squares per entry of the drawn ε_R, the oracle's and the model's
    predictions, and the mean cosine between the model's and the oracle's.

    ``pool`` (states, weights) is the oracle's knowledge of the ensemble; ``data`` itself by default.
    """
    pool_states, pool_weights = pool if pool is not None else (data, weights)
    diffusion = model.diffusion(system)
    gen = torch.Generator().manual_seed(seed)
    dtype = next(model.parameters()).dtype
    rows = []
    for t_value in times:
        pick = torch.multinomial(weights, num, replacement=True, generator=gen)
        clean = RigidState(data.x[pick], data.R[pick])
        t = torch.full((num,), float(t_value), dtype=torch.float64)
        noisy, eps_x, eps_R = diffusion.perturb(clean, t, generator=gen)
        with torch.no_grad():
            pred_x, pred_R = model.eps(system, RigidState(noisy.x.to(dtype), noisy.R.to(dtype)), t.to(dtype))
        best_x, best_R = oracle_eps(diffusion, noisy, float(t_value), pool_states, pool_weights)
        row = {"t": float(t_value), "sigma": float(diffusion.flat.noise_std(t[:1], clean.x[:1])[0, 0]),
               "sigma_R": float(diffusion.rotation_sigma(t[:1]))}
        for who, px, pR in (("model", pred_x.double(), pred_R.double()), ("oracle", best_x, best_R)):
            err_x = (px - eps_x) ** 2
            row[who] = {"centroid": float(err_x[:, :3].mean()), "orientation": float(((pR - eps_R) ** 2).mean()),
                        "torsions": float(err_x[:, 3:].mean()) if system.num_torsions else None}
        # how the orientation prediction fails: too small (|model|² < |oracle|²) or pointing elsewhere
        pR = pred_R.double()
        cosine = (pR * best_R).sum(-1) / (pR.norm(dim=-1) * best_R.norm(dim=-1)).clamp_min(1e-12)
        row["orientation_detail"] = {"target_sq": float((eps_R ** 2).mean()), "oracle_sq": float((best_R ** 2).mean()),
                                     "model_sq": float((pR ** 2).mean()), "cosine_model_oracle": float(cosine.mean())}
        rows.append(row)
    return rows
