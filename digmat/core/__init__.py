"""Chemistry-free diffusion core of digmat (batched torch, device-agnostic, seeded).

States are tensors (B, *shape) on a :class:`StateSpace` whose entries are Euclidean or
periodic. :class:`Diffusion` combines a space with a :class:`NoiseSchedule` (DiG's VP SDE on
Euclidean entries, a wrapped variance-exploding SDE on periodic ones). On top of it:

- :func:`dsm_loss` — denoising score matching (score or eps form); :func:`pooled_target` — its
  target averaged over a pool of data points (same minimiser, less variance); :func:`target_score_loss` —
  score matching on samples whose target score is known; :func:`denoising_profile` — a model's
  noise-prediction error per noise level;
- :func:`sample_sde` — DiG's ancestral reverse chain (:func:`resample_sde`: from given states noised to a time; :class:`LangevinCorrector`: predictor–corrector moves); :class:`SamplerConfig` — the one sampling
  configuration (SDE or ODE, steps, grid) every model family uses;
- :func:`sample_ode`, :func:`encode`, :func:`decode` — the probability-flow ODE (Heun on the
  EDM grid, adaptive Dormand–Prince);
- :func:`log_prob` — log-densities with the exact trace or Hutchinson's estimator;
- :func:`interpolate` — paths through latent space;
- :class:`RigidDiffusion` — a flat state times rotations in SO(3) (ligand poses), with
  :func:`rigid_dsm_loss` and :func:`sample_rigid_sde`; :func:`rigid_log_prob` — their log-densities
  by the probability-flow ODE on the group;
- :func:`guided_score` — score + lambda grad log p(c | x_t);
- :func:`log_density_residual`, :func:`score_residual` — the forward process's Fokker–Planck
  equation for a model; :func:`fit_pidp` / :func:`pidp_loss` — physics-informed diffusion
  pre-training from an energy alone; :func:`mala` — the MCMC baseline and PIDP's buffer moves;
  :func:`metropolis_corrector` — MALA on a log-density model's own density;
  :func:`replica_exchange_mala` — parallel tempering with MALA moves (energies alone);
  :class:`MixtureJump` / :func:`mixture_jump` — mode-jumping independence moves between basins;
- :class:`ProductMixture` — exact targets for validating all of the above.

Nothing here imports chemistry packages.
"""

from .analytic import ProductMixture
from .diffusion import Diffusion, ScoreFn
from .fpe import fpe_coefficients, log_density_residual, potential_score, score_residual
from .flow import FlowResult, LogProbResult, ODEConfig, decode, encode, log_prob, sample_ode
from .guidance import gaussian_property_likelihood, guided_score
from .interpolate import InterpolationResult, interpolate, interpolate_latents
from .jump import JumpResult, MixtureJump, mixture_jump
from .mcmc import MALAResult, mala
from .tempering import ReplicaExchangeResult, replica_exchange_mala
from .pidp import PIDPConfig, PIDPHistory, PIDPLoss, fit_pidp, metropolis_corrector, pidp_loss
from .loss import (DenoisingProfile, DSMLoss, NoisedBatch, denoising_profile, dsm_loss, noise_batch, pooled_target, score_matching_error,
                   target_score_blend, target_score_loss)
from .rigid import RigidDiffusion, RigidLoss, RigidScoreFn, RigidState, rigid_dsm_loss, sample_rigid_sde
from .rigid_flow import RigidFlowConfig, RigidLogProb, rigid_log_prob
from .schedule import NoiseSchedule
from .sampler import SAMPLERS, SampleConfig, SamplerConfig
from .sde import LangevinCorrector, SDEResult, langevin_step, resample_sde, sample_sde
from .space import StateSpace
from .torus import wrap, wrap_centered, wrapped_normal_log_prob, wrapped_normal_score

__all__ = [
    "DenoisingProfile",
    "Diffusion",
    "DSMLoss",
    "FlowResult",
    "InterpolationResult",
    "JumpResult",
    "LangevinCorrector",
    "LogProbResult",
    "MALAResult",
    "MixtureJump",
    "PIDPConfig",
    "PIDPHistory",
    "PIDPLoss",
    "NoisedBatch",
    "NoiseSchedule",
    "ODEConfig",
    "ProductMixture",
    "SAMPLERS",
    "RigidDiffusion",
    "RigidFlowConfig",
    "RigidLogProb",
    "RigidLoss",
    "RigidScoreFn",
    "RigidState",
    "SDEResult",
    "SampleConfig",
    "SamplerConfig",
    "ScoreFn",
    "StateSpace",
    "decode",
    "denoising_profile",
    "dsm_loss",
    "encode",
    "fit_pidp",
    "metropolis_corrector",
    "mixture_jump",
    "fpe_coefficients",
    "gaussian_property_likelihood",
    "guided_score",
    "interpolate",
    "interpolate_latents",
    "langevin_step",
    "log_density_residual",
    "log_prob",
    "mala",
    "pidp_loss",
    "pooled_target",
    "potential_score",
    "noise_batch",
    "replica_exchange_mala",
    "ReplicaExchangeResult",
    "rigid_dsm_loss",
    "rigid_log_prob",
    "target_score_blend",
    "target_score_loss",
    "sample_ode",
    "sample_rigid_sde",
    "resample_sde",
    "sample_sde",
    "score_matching_error",
    "score_residual",
    "wrap",
    "wrap_centered",
    "wrapped_normal_log_prob",
    "wrapped_normal_score",
]
