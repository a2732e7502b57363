"""Peptide ensembles from a peptide score model: samples, basins, clashes, reweighting, files.

:func:`sample_peptides` draws i.i.d. conformations of a capped peptide at a temperature;
the returned :class:`PeptideEnsemble` gives per-residue Ramachandran basin tables (with 95 %
intervals and free energies), a clash check, importance weights against the force field
(:meth:`PeptideEnsemble.reweight`: the model's exact log-density from the probability-flow
ODE and the force-field energy, with the effective sample size), and writes the ensemble as
a multi-model PDB, extxyz, JSON and a Ramachandran plot per residue.
"""

from __future__ import annotations

import os
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from ase import Atoms

from digmat.core import ODEConfig, SampleConfig, log_prob
from digmat.models.peptide import PeptideScoreModel
from digmat.protein import BasinTable, basin_table, phi_psi, write_pdb
from digmat.protein.torsions import bond_graph, nonlocal_pairs
from digmat.systems.peptide import PeptideSystem

__all__ = ["CLASH_MODES", "DEFAULT_PEPTIDE_SAMPLER", "MAX_DRAWS_PER_SAMPLE", "PeptideEnsemble", "clash_mask",
           "clashing_states", "ramachandran_histograms", "relax_clashes", "sample_peptides"]

DEFAULT_PEPTIDE_SAMPLER = ("sde", 200)
"""Default sampler and steps for peptides."""

KB_EV = 8.617333262e-5  # eV/K

MAX_DRAWS_PER_SAMPLE = 20
"""With clashes removed, :func:`sample_peptides` gives up after this many draws per requested sample."""

CLASH_MODES = ("relax", "reject", "keep")
"""What :func:`sample_peptides` does with a clashing sample: move its torsions out of the clash
(:func:`relax_clashes`), redraw it, or keep it."""


def clash_mask(atoms: Atoms, positions: np.ndarray, *, scale: float = 0.6) -> np.ndarray:
    """Which frames have a steric clash: two atoms four or more bonds apart closer than
    ``scale`` × the sum of their van der Waals radii (Bondi, ASE's table).

    Parameters
    ----------
    atoms : ase.Atoms
        Named peptide (for the bond graph and elements).
    positions : ndarray, shape (F, N, 3)

    Returns
    -------
    ndarray of bool, shape (F,)
    """
    from ase.data.vdw import vdw_radii

    i, j = nonlocal_pairs(bond_graph(atoms))
    radii = np.array([vdw_radii[z] for z in atoms.numbers])
    limit = scale * (radii[i] + radii[j])
    d = np.linalg.norm(positions[:, i] - positions[:, j], axis=-1)
    return np.any(d < limit, axis=1)


def clashing_states(system: PeptideSystem, states: torch.Tensor, *, scale: float = 0.6) -> np.ndarray:
    """:func:`clash_mask` of the conformations of states ``(B, dim)``, decoded in torch
    (:meth:`~digmat.systems.peptide.PeptideSystem.contact_ratios`); bool, shape (B,)."""
    with torch.no_grad():
        ratios = system.contact_ratios(states.detach().double().cpu())
    return (ratios < scale).any(dim=-1).numpy()


def relax_clashes(system: PeptideSystem, states: torch.Tensor, *, steps: int = 100, lr: float = 0.02,
                  margin: float = 0.65) -> torch.Tensor:
    """Move states out of steric clash with the smallest change of their torsions.

    Adam (``steps``, learning rate ``lr`` rad) on the torsions alone minimises
    Σ relu(margin − d_ij/(R_i + R_j))² over the pairs :func:`clash_mask` judges
    (:meth:`~digmat.systems.peptide.PeptideSystem.contact_ratios`); ``margin`` (0.65) sits
    just above the clash criterion (0.6).  States with every pair beyond the margin are not
    moved; :func:`sample_peptides` relaxes only clashing ones.  Measured on the peptide
    model's clashing samples: every one resolved, and the basin populations of the whole
    ensemble kept (docs/protein.md §9).

    Parameters
    ----------
    system : PeptideSystem
    states : torch.Tensor, shape (B, dim)
        Radians.

    Returns
    -------
    torch.Tensor, shape (B, dim)
        Relaxed states in [0, 2π), the input's dtype; the input is not changed.
    """
    x = states.detach().double().cpu().clone().requires_grad_(True)
    optimiser = torch.optim.Adam([x], lr=lr)
    with torch.enable_grad():
        for _ in range(steps):
            loss = torch.relu(margin - system.contact_ratios(x)).pow(2).sum()
            if loss.item() == 0.0:
                break
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
    return system.space.wrap(x.detach()).to(states.dtype)


def _settle(system: PeptideSystem, states: torch.Tensor, mode: str) -> tuple[torch.Tensor, int, int]:
    """One batch through the clash mode: (states kept, how many clashed as drawn, how many were relaxed)."""
    if mode == "keep":
        return states, 0, 0
    bad = clashing_states(system, states)
    still, relaxed = bad, 0
    if mode == "relax" and bad.any():
        states, still = states.clone(), bad.copy()
        moved = relax_clashes(system, states[torch.as_tensor(bad)])
        states[torch.as_tensor(bad)] = moved
        still[bad] = clashing_states(system, moved)  # only the moved ones can have changed
        relaxed = int(bad.sum() - still.sum())
    return states[torch.as_tensor(~still)], int(bad.sum()), relaxed


@dataclass
class PeptideEnsemble:
    """Samples of one peptide at one temperature.

    Attributes
    ----------
    system : PeptideSystem
    temperature : float
        K.
    states : torch.Tensor, shape (n, dim)
        Torsion states (radians, [0, 2π)).
    seconds : float
        Sampling wall time.
    evaluations : int
        Network evaluations per sample.
    meta : dict
        Model, sampler, seed; unless clashes were kept also ``clashes`` (the mode of
        :data:`CLASH_MODES`), ``draws`` (samples drawn from the model), ``raw_clash_rate``
        (share of them that clashed as drawn) and ``relaxed`` (samples moved out of a clash).
    weights : ndarray or None
        Normalised importance weights after :meth:`reweight`.
    """

    system: PeptideSystem
    temperature: float
    states: torch.Tensor
    seconds: float
    evaluations: int
    meta: dict = field(default_factory=dict)
    weights: np.ndarray | None = None
    reweight_info: dict | None = None
    _atoms: list[Atoms] | None = None

    def conformations(self) -> list[Atoms]:
        """The samples as named Atoms (decoded once, cached); ``info['sample_index']`` set."""
        if self._atoms is None:
            self._atoms = self.system.to_atoms(self.states.double())
            for k, atoms in enumerate(self._atoms):
                atoms.info["sample_index"] = k
        return self._atoms

    def positions(self) -> np.ndarray:
        """Positions of all samples, shape (n, N, 3), Å."""
        return np.stack([a.positions for a in self.conformations()])

    def phi_psi(self) -> np.ndarray:
        """(φ, ψ) per sample and residue in degrees, shape (n, R, 2) (proline's φ included)."""
        return phi_psi(self.system.template, self.positions())

    def basin_tables(self, *, weighted: bool = True) -> list[BasinTable]:
        """One :class:`~digmat.protein.BasinTable` per residue (importance-weighted after
        :meth:`reweight` unless ``weighted=False``)."""
        angles = self.phi_psi()
        w = self.weights if weighted else None
        return [basin_table(angles[:, r], self.temperature, weights=w) for r in range(angles.shape[1])]

    def clash_rate(self) -> float:
        """Share of samples with a steric clash (:func:`clash_mask`)."""
        return float(clash_mask(self.system.template, self.positions()).mean())

    def without_clashes(self, mode: str = "relax") -> PeptideEnsemble:
        """A new ensemble (weights dropped) with no steric clash: clashing samples relaxed out
        of the clash (``"relax"``, :func:`relax_clashes`; any still clashing are dropped) or
        dropped (``"reject"``: the model's distribution restricted to sterically allowed
        conformations, where the Boltzmann distribution has its mass).  ``meta`` records the
        draws, the raw clash rate and the relaxed count."""
        if mode not in CLASH_MODES[:2]:
            raise ValueError(f"mode must be 'relax' or 'reject', got {mode!r}")
        states, clashed, relaxed = _settle(self.system, self.states, mode)
        draws = int(self.meta.get("draws", len(self.states)))
        before = round(self.meta.get("raw_clash_rate", 0.0) * draws)
        meta = {**self.meta, "clashes": mode, "draws": draws, "raw_clash_rate": (before + clashed) / draws,
                "relaxed": int(self.meta.get("relaxed", 0)) + relaxed}
        return PeptideEnsemble(self.system, self.temperature, states, self.seconds, self.evaluations, meta)

    def log_density(self, model: PeptideScoreModel, *, steps: int = 64) -> np.ndarray:
        """The log-density of each sample on the torsion torus (ln rad⁻ᵈ), exact trace: the
        model's, and after clash rejection that of the model restricted to clash-free states
        (the model's minus ln of the accepted share of draws).  Relaxed samples get the
        model's density at their relaxed torsions: an approximation for the few that moved."""
        diffusion = self.system.diffusion(model.config.schedule)
        score = model.score_fn(self.system, self.temperature)
        states = self.states.to(next(model.parameters()).dtype)
        result = log_prob(diffusion, score, states, ODEConfig("heun", steps=steps), divergence="exact")
        log_q = result.log_prob.detach().double().cpu().numpy()
        if self.meta.get("clashes") == "reject":
            log_q = log_q - np.log1p(-self.meta["raw_clash_rate"])
        return log_q

    def reweight(self, model: PeptideScoreModel, *, relax: bool = True, harmonic: bool = True, steps: int = 64,
                 threads: int | None = 1) -> dict[str, Any]:
        """Importance weights w ∝ exp(−E/k_BT − log q) against the force field (ff14SB + GBn2).

        q is the model's density of the sample's torsions; E the force-field energy of the
        torsion state: with ``relax`` (default) after relaxing bonds and angles at fixed
        torsions (:func:`digmat.protein.relax.torsion_restrained_energies`), and with
        ``harmonic`` (default) the harmonic free energy of the other degrees of freedom added
        (½ ln det′ H at the restrained minimum); otherwise at the template's rigid geometry.
        Measured on alanine dipeptide (docs/protein.md): rigid energies put αL/C7ax 2.8
        kcal/mol too high, relaxed 0.5–0.8 too low, relaxed + harmonic 0.5 too low.
        Sets :attr:`weights`.

        Returns
        -------
        dict
            ``effective_sample_size`` (Kish), its ratio to n, energy evaluations.
        """
        from digmat.protein import OpenMMCalculator
        from digmat.protein.relax import torsion_restrained_energies

        correction = 0.0
        if relax and harmonic:
            energies, _, half_log_det = torsion_restrained_energies(self.conformations(), self.system.torsions,
                                                                    threads=threads, harmonic=True)
            correction = half_log_det
        elif relax:
            energies, _ = torsion_restrained_energies(self.conformations(), self.system.torsions, threads=threads)
        else:
            calc = OpenMMCalculator(threads=threads)
            energies = []
            for atoms in self.conformations():
                probe = atoms.copy()
                probe.calc = calc
                energies.append(probe.get_potential_energy())
            energies = np.array(energies)
        log_q = self.log_density(model, steps=steps)
        log_w = -(energies - energies.min()) / (KB_EV * self.temperature) - correction - log_q
        log_w -= log_w.max()
        w = np.exp(log_w)
        w /= w.sum()
        self.weights = w
        n_eff = float(1.0 / np.sum(w**2))
        self.reweight_info = {"effective_sample_size": n_eff, "ess_ratio": n_eff / len(w), "relaxed": bool(relax),
                              "harmonic": bool(relax and harmonic),
                              "energy_evaluations": len(w), "ode_steps": steps}
        return self.reweight_info

    def summary(self) -> dict[str, Any]:
        """JSON-ready: basin tables per residue (model and, after reweighting, weighted), clash
        rate, cost."""
        residues = [n for n in self.system.residues]
        out = {
            "sequence": self.system.sequence, "temperature_K": self.temperature, "num_samples": len(self.states),
            "torsions": self.system.conditioning()["torsions"], "seconds": round(self.seconds, 3),
            "seconds_per_sample": self.seconds / max(1, len(self.states)), "network_evaluations": self.evaluations,
            "clash_rate": self.clash_rate(), **self.meta,
            "basins": {str(r): t.as_dict() for r, t in zip(residues, self.basin_tables(weighted=False))},
        }
        if self.weights is not None:
            out["reweighted_basins"] = {str(r): t.as_dict() for r, t in zip(residues, self.basin_tables())}
            out["reweight"] = self.reweight_info
        return out

    def write(self, out_dir: str | os.PathLike, *, plot: bool = True, reference: np.ndarray | None = None) -> dict[str, Path]:
        """Write ``ensemble.pdb`` (multi-model), ``ensemble.extxyz`` and ``ramachandran.png``."""
        from ase.io import write

        from digmat.files import atomic_path

        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        atoms = self.conformations()
        files = {"pdb": out / "ensemble.pdb", "extxyz": out / "ensemble.extxyz"}
        write_pdb(files["pdb"], atoms)
        with atomic_path(files["extxyz"]) as tmp:
            write(tmp, atoms, format="extxyz")
        if plot:
            files["plot"] = out / "ramachandran.png"
            self.plot(files["plot"], reference)
        return files

    def plot(self, path: str | os.PathLike, reference: np.ndarray | None = None) -> None:
        """Ramachandran plot per residue: the samples, and a reference's free-energy contours
        (1–5 kT above its minimum) when ``reference`` is given: (R, bins, bins) histograms over
        φ (first axis) and ψ on [−180, 180)² (:func:`ramachandran_histograms`)."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        from digmat.files import atomic_path

        angles = self.phi_psi()
        n_res = angles.shape[1]
        fig, axes = plt.subplots(1, n_res, figsize=(4.2 * n_res, 4.0), squeeze=False)
        for r, ax in enumerate(axes[0]):
            ax.scatter(angles[:, r, 0], angles[:, r, 1], s=3, alpha=0.4, color="tab:blue", label="digmat")
            if reference is not None:
                hist = np.asarray(reference[r], dtype=float)
                bins = hist.shape[0]
                centres = -180 + (np.arange(bins) + 0.5) * 360 / bins
                with np.errstate(divide="ignore"):
                    free = -np.log(hist.T / hist.max())
                ax.contour(centres, centres, free, levels=[1, 2, 3, 4, 5], colors="k", linewidths=0.7)
            ax.set_xlim(-180, 180)
            ax.set_ylim(-180, 180)
            ax.set_xlabel("φ (°)")
            ax.set_ylabel("ψ (°)")
            label = " (contours: reference, 1–5 kT)" if reference is not None else ""
            ax.set_title(f"{self.system.sequence} residue {r + 1}, {self.temperature:g} K{label}", fontsize=9)
        fig.tight_layout()
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=110, format="png")
        plt.close(fig)


def ramachandran_histograms(angles: np.ndarray, weights: np.ndarray | None = None, bins: int = 36) -> np.ndarray:
    """Normalised (φ, ψ) histograms per residue, shape (R, bins, bins), from (n, R, 2) degrees."""
    out = []
    for r in range(angles.shape[1]):
        hist, _, _ = np.histogram2d(angles[:, r, 0], angles[:, r, 1], bins=bins, range=[[-180, 180], [-180, 180]],
                                    weights=weights)
        out.append(hist / hist.sum())
    return np.array(out)


def sample_peptides(
    model: PeptideScoreModel,
    peptide: str | Atoms | PeptideSystem,
    num: int,
    *,
    temperature: float = 300.0,
    clashes: str = "relax",
    config: SampleConfig | None = None,
    **overrides: Any,
) -> PeptideEnsemble:
    """Draw ``num`` i.i.d. conformations of a capped peptide from a peptide score model.

    A sample with a steric clash (:func:`clash_mask`) is by default moved out of it by the
    smallest change of its torsions (``clashes="relax"``, :func:`relax_clashes`), which keeps
    the model's basin populations; ``"reject"`` redraws it instead (i.i.d. samples from the
    model restricted to sterically allowed states, as BioEmu filters unphysical samples; the
    model's clashes concentrate in αL/C7ax, so this lowers that basin); ``"keep"`` returns the
    raw draws.  ``meta['raw_clash_rate']`` reports how often the model alone clashed.

    Parameters
    ----------
    model : PeptideScoreModel
    peptide : str, ase.Atoms or PeptideSystem
        One-letter sequence (ACE-…-NME is built), a named peptide, or its system.
    num : int
        Samples, >= 1.
    temperature : float
        K (within the model's trained range).
    clashes : {"relax", "reject", "keep"}
        What to do with a clashing sample (samples still clashing after relaxation are
        redrawn; at most :data:`MAX_DRAWS_PER_SAMPLE` draws per sample).
    config : SampleConfig, optional
        Sampler, seed, device, batch size; or the same as keywords (``seed=3``).

    Returns
    -------
    PeptideEnsemble
    """
    cfg = SampleConfig.build(config, **overrides)
    if clashes not in CLASH_MODES:
        raise ValueError(f"clashes must be one of {CLASH_MODES}, got {clashes!r}")
    if isinstance(num, bool) or not isinstance(num, int) or num < 1:
        raise ValueError(f"num must be an integer >= 1, got {num!r}")
    model.check_supported(temperature)
    if isinstance(peptide, PeptideSystem):
        system = peptide
    elif isinstance(peptide, Atoms):
        system = PeptideSystem(peptide)
    else:
        system = PeptideSystem.from_sequence(peptide)
    trained = set("".join(model.config.training_sequences))
    unseen = sorted(set(system.sequence) - trained) if trained else []
    if unseen:
        warnings.warn(f"amino acid(s) {', '.join(unseen)} of {system.sequence} were not in the model's training data "
                      f"({', '.join(model.config.training_sequences)}): its populations there are an extrapolation",
                      stacklevel=2)
    if len(system.sequence) > max((len(s) for s in model.config.training_sequences), default=len(system.sequence)):
        warnings.warn(f"{system.sequence} is longer than every training peptide: an extrapolation", stacklevel=2)
    sampler = cfg.sampler_config({"sde": DEFAULT_PEPTIDE_SAMPLER[1], "ode": 25}, DEFAULT_PEPTIDE_SAMPLER[0])
    device = cfg.model_device(model)
    diffusion = system.diffusion(model.config.schedule)
    score = model.score_fn(system, temperature)
    generator = torch.Generator(device="cpu").manual_seed(cfg.seed)
    from tqdm import tqdm

    start = time.perf_counter()
    chunks, nfe, kept, draws, clean, clashed, relaxed = [], 0, 0, 0, 0, 0, 0
    bar = tqdm(total=num, desc=f"sampling {system.sequence}", unit="sample", disable=not cfg.progress, leave=False)
    with torch.no_grad(), bar:
        while kept < num:
            want = num - kept
            if draws and clean < draws:  # draw about what the acceptance so far says is missing
                want = min(int(np.ceil(1.1 * want * draws / max(clean, 1))), MAX_DRAWS_PER_SAMPLE * num - draws)
            x, nfe = sampler.sample(diffusion, score, min(cfg.batch_size, want), generator=generator, device=device)
            x = system.space.wrap(x).cpu()
            draws += len(x)
            x, bad, moved = _settle(system, x, clashes)
            clean, clashed, relaxed = clean + len(x), clashed + bad, relaxed + moved
            chunks.append(x[: num - kept])
            kept += len(chunks[-1])
            bar.update(len(chunks[-1]))
            if kept < num and draws >= MAX_DRAWS_PER_SAMPLE * num:
                raise RuntimeError(f"{clean} of {draws} samples of {system.sequence} were free of clashes: the model "
                                   f"does not describe this peptide (pass clashes='keep' to see its samples)")
    seconds = time.perf_counter() - start
    meta = {"sampler": sampler.method, "steps": sampler.steps, "seed": cfg.seed,
            "model": getattr(model, "metadata", {}).get("name", "peptide")}
    if clashes != "keep":
        meta.update(clashes=clashes, draws=draws, raw_clash_rate=clashed / draws, relaxed=relaxed)
    return PeptideEnsemble(system, float(temperature), torch.cat(chunks), seconds, nfe, meta)
