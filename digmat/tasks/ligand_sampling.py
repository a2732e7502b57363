"""Sampling ligand poses with a trained model, and what is reported about them.

:func:`sample_poses` runs the reverse chain of :class:`~digmat.core.RigidDiffusion` in
batches and returns a :class:`PoseEnsemble`: every pose (Å, the protein's frame), its Vina
energy (inter + intra, kcal/mol, direct scoring) and whether its centroid lies in the site's
box. :meth:`PoseEnsemble.modes` clusters them (:func:`~digmat.ligand.cluster_modes`, 2 Å
symmetry-aware RMSD, lowest Vina energy first) with 95 % intervals over independent sampling
batches; :func:`reference_populations` assigns poses to a reference's modes, so
:func:`total_variation` compares a model with a reference ensemble mode by mode.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch

from digmat.core import RigidState, sample_rigid_sde
from digmat.ligand.energy import StericCore, vina_scorer
from digmat.ligand.minimize import minimize_poses, pose_shift
from digmat.ligand.mode_energies import ModeEnergyConfig, ModeWeights, weigh_clustered_modes
from digmat.ligand.modes import BindingModes, cluster_modes
from digmat.ligand.system import LigandSystem
from digmat.ligand.tempering import refine_poses

__all__ = ["PoseEnsemble", "reference_populations", "sample_poses", "total_variation"]


@dataclass
class PoseEnsemble:
    """Sampled poses of one complex.

    Attributes
    ----------
    system : LigandSystem
    positions : numpy.ndarray
        (S, N, 3) Å, Mol atom order.
    energy : numpy.ndarray
        (S,) kcal/mol, Vina inter + intra (direct).
    vina_score : numpy.ndarray
        (S,) kcal/mol, what ``Vina.score()`` reports (inter / (1 + w N_rot)).
    in_box : numpy.ndarray
        (S,) bool: centroid within ``box_radius`` Å of the site centre.
    batch : numpy.ndarray
        (S,) int: the independent sampling batch of each pose (for intervals).
    box_radius : float
    seconds : float
        Wall time of sampling (network evaluations only).
    refinement : dict or None
        Steps, poses, seconds and acceptance of the Metropolis refinement, if any.
    minimization : dict or None
        Iterations, poses, seconds, share stopped, median energy drop (kcal/mol) and median move
        (Å) of the local minimisation, if any.
    weights : ModeWeights or None
        The modes weighed by a calculator, after :meth:`reweight`.
    contact_ratio : numpy.ndarray or None
        (S,) each pose's smallest ligand–pocket heavy-atom distance over its van der Waals sum
        (:meth:`~digmat.ligand.energy.StericCore.contact_ratio`; below 0.75 PoseBusters calls it a clash).
    log_density : numpy.ndarray or None
        (S,) each pose's log-density under the model (nats per Å^3 · rad^M · unit Haar), after
        :meth:`compute_log_density`.
    """

    system: LigandSystem
    positions: np.ndarray
    energy: np.ndarray
    vina_score: np.ndarray
    in_box: np.ndarray
    batch: np.ndarray
    box_radius: float
    seconds: float
    refinement: dict | None = None
    minimization: dict | None = None
    weights: ModeWeights | None = None
    contact_ratio: np.ndarray | None = None
    log_density: np.ndarray | None = None
    _modes: BindingModes | None = field(default=None, repr=False)

    @property
    def clash_free_fraction(self) -> float | None:
        """Share of poses whose ``contact_ratio`` is ≥ 0.75 (no PoseBusters clash with the pocket); None without it."""
        return None if self.contact_ratio is None else float((self.contact_ratio >= 0.75).mean())

    def modes(self, cutoff: float = 2.0) -> BindingModes:
        """Binding modes of the poses (cached for the default cutoff)."""
        if cutoff == 2.0 and self._modes is not None:
            return self._modes
        modes = cluster_modes(self.system.pose, self.positions, self.energy, chains=self.batch, cutoff=cutoff)
        if cutoff == 2.0:
            self._modes = modes
        return modes

    def mode_table(self, reference=None, *, min_population: float = 0.0) -> list[dict]:
        """One row per mode (population ≥ ``min_population``): population, 95 % interval over the
        sampling batches, lowest and mean Vina energy (kcal/mol) and, with a ``reference`` pose
        (N, 3) Å, the representative's symmetry-aware RMSD to it (Å)."""
        rows = self.modes().table(self.system.pose, reference)
        if self.weights is not None:
            for m in self.weights.modes:
                rows[m.mode - 1].update(reweighted_population=m.population, free_energy=m.free_energy,
                                        relaxed_energy=m.energy, relaxation_rmsd=m.relaxation_rmsd,
                                        relaxation_anomalous=m.anomalous)
                if reference is not None:
                    rows[m.mode - 1]["relaxed_rmsd_to_reference"] = float(self.system.pose.rmsd(m.positions, reference)[0, 0])
        if self.log_density is not None:
            labels = self.modes().labels
            for k, row in enumerate(rows):
                members = self.log_density[labels == k]
                row.update(log_p_mean=float(members.mean()), log_p_max=float(members.max()))
        return [r for r in rows if r["population"] >= min_population]

    def reweight(self, protein, calculator: str = "gfnff", *, temperature: float = 300.0, reference=None,
                 config: ModeEnergyConfig = ModeEnergyConfig()) -> ModeWeights:
        """Weigh the most populated modes with a calculator (:func:`~digmat.ligand.mode_energies.weigh_modes`).

        The lowest-Vina-energy poses of each mode (``config.starts_per_mode``) are relaxed with
        ``calculator`` (:data:`LIGAND_CALCULATORS`) in a fixed pocket of ``protein`` (PDB/mmCIF
        path; residues within ``config.pocket_radius`` Å of any relaxed pose) and the modes'
        distinct minima get harmonic populations at ``temperature`` K. A ``reference`` pose
        (N, 3) Å, e.g. the crystal's, is weighed beside them (``weights.reference``).
        Sets :attr:`weights`; :meth:`mode_table` and :meth:`summary` then carry each mode's
        ``reweighted_population``, ``free_energy`` and ``relaxed_energy`` (kcal/mol, relative), and
        ``relaxation_anomalous`` (every start relaxed into an artefact — changed bonding or a failed
        calculator, :func:`~digmat.ligand.physics.bond_anomalies`, ``energy_anomalies``: no weight).
        """
        modes = self.modes()
        chosen = range(min(config.max_modes, len(modes.populations)))
        self.weights = weigh_clustered_modes(protein, self.system.mol, self.system.pose, self.positions, self.energy,
                                             modes.labels, chosen, modes.populations[: len(chosen)], calculator,
                                             temperature=temperature, config=config, reference=reference)
        return self.weights

    def compute_log_density(self, model, *, steps: int = 100, device=None) -> np.ndarray:
        """Log-density of every pose under ``model`` (:func:`~digmat.tasks.ligand_density.pose_log_density`,
        ``steps`` Heun steps of the probability-flow ODE); sets :attr:`log_density`, which
        :meth:`mode_table` (each mode's mean and largest) and :meth:`sdf` (``log_p`` per pose) then report."""
        from digmat.core import RigidFlowConfig
        from digmat.tasks.ligand_density import pose_log_density

        self.log_density = pose_log_density(model, self.system, self.positions, config=RigidFlowConfig(steps=steps),
                                            device=device)
        return self.log_density

    def summary(self, reference=None) -> dict:
        """JSON-able figures of the ensemble (modes with population ≥ 0.01)."""
        modes = self.mode_table(reference, min_population=0.01)
        out = {"num_samples": int(len(self.positions)), "seconds": round(self.seconds, 2), "refinement": self.refinement,
               "minimization": self.minimization,
               "in_box_fraction": float(self.in_box.mean()), "box_radius_A": self.box_radius,
               "clash_free_fraction": self.clash_free_fraction,
               "num_modes": int(len(self.modes().populations)), "vina_energy_median": float(np.median(self.energy)),
               "modes": modes}
        if self.weights is not None:
            out["reweight"] = {k: v for k, v in self.weights.as_dict().items() if k != "modes"}
        if reference is not None:
            rmsd = self.system.pose.rmsd(self.positions, reference)[:, 0]
            out["fraction_within_2A_of_reference"] = float((rmsd <= 2.0).mean())
        return out

    def sdf(self, which: str = "poses", names=None) -> bytes:
        """SDF text of every pose (``"poses"``, with mode and energies as properties), of each mode's
        representative (``"modes"``, with population) or of the calculator-relaxed representatives
        (``"relaxed"``, after :meth:`reweight`); coordinates in the protein's frame."""
        import io

        from rdkit import Chem

        from digmat.ligand.checks import mols_at

        modes = self.modes()
        if which == "relaxed":
            if self.weights is None:
                raise ValueError("no relaxed modes: call reweight() first")
            relaxed = self.weights.modes
            mols = mols_at(self.system.mol, np.array([m.positions for m in relaxed]),
                           names=[f"mode {m.mode} relaxed ({self.weights.calculator})" for m in relaxed])
            props = [{"reweighted_population": f"{m.population:.4f}", "free_energy_kcal_mol": "-" if m.free_energy is None else f"{m.free_energy:.3f}",
                      "model_population": f"{m.model_population:.4f}"} for m in relaxed]
        elif which == "modes":
            mols = mols_at(self.system.mol, modes.representatives, names=[f"mode {k + 1}" for k in range(len(modes.populations))])
            props = [{"population": f"{p:.4f}", "vina_energy_min": f"{e:.3f}"} for p, e in zip(modes.populations, modes.energy_min)]
        elif which == "poses":
            mols = mols_at(self.system.mol, self.positions, names=[f"pose {k + 1}" for k in range(len(self.positions))])
            ratio = np.full(len(self.positions), np.nan) if self.contact_ratio is None else self.contact_ratio
            props = [{"mode": str(int(m) + 1), "vina_energy": f"{e:.3f}", "vina_score": f"{v:.3f}", "in_box": str(bool(b)),
                      "contact_ratio": f"{c:.3f}"}
                     for m, e, v, b, c in zip(modes.labels, self.energy, self.vina_score, self.in_box, ratio)]
            if self.log_density is not None:
                for prop, lp in zip(props, self.log_density):
                    prop["log_p"] = f"{lp:.3f}"
        else:
            raise ValueError(f"which must be 'poses', 'modes' or 'relaxed', got {which!r}")
        buffer = io.StringIO()
        writer = Chem.SDWriter(buffer)
        for mol, prop in zip(mols, props):
            for key, value in prop.items():
                mol.SetProp(key, value)
            writer.write(mol)
        writer.close()
        return buffer.getvalue().encode()

    def plot(self, fh, *, top: int = 5) -> None:
        """PNG of the ``top`` modes' representatives in the pocket, projected on the plane of the two
        largest principal axes of the pocket atoms near them (pocket heavy atoms grey)."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        modes = self.modes()
        reps = modes.representatives[:top]
        heavy = self.system.pose.heavy
        centre = reps[:, heavy].reshape(-1, 3).mean(axis=0)
        pocket = self.system.pocket_positions
        near = pocket[np.linalg.norm(pocket - centre, axis=1) < 10.0]
        cloud = near if len(near) >= 3 else reps.reshape(-1, 3)
        _, _, vt = np.linalg.svd(cloud - cloud.mean(axis=0), full_matrices=False)
        axes = vt[:2].T
        fig, ax = plt.subplots(figsize=(6, 6))
        if len(near):
            p = (near - centre) @ axes
            ax.scatter(p[:, 0], p[:, 1], s=12, c="0.8", label="pocket heavy atoms")
        bonds = [(b.GetBeginAtomIdx(), b.GetEndAtomIdx()) for b in self.system.mol.GetBonds()
                 if heavy[b.GetBeginAtomIdx()] and heavy[b.GetEndAtomIdx()]]
        colours = plt.cm.tab10.colors
        for k, rep in enumerate(reps):
            q = (rep - centre) @ axes
            for i, j in bonds:
                ax.plot(q[[i, j], 0], q[[i, j], 1], color=colours[k % 10], lw=2)
            ax.plot([], [], color=colours[k % 10], lw=2, label=f"mode {k + 1}: {modes.populations[k]:.2f}")
        ax.set_aspect("equal")
        ax.set_xlabel("Å")
        ax.set_ylabel("Å")
        ax.legend(loc="upper right", fontsize=8)
        ax.set_title("binding modes (population)")
        fig.savefig(fh, format="png", dpi=120, bbox_inches="tight")
        plt.close(fig)


@torch.no_grad()
def sample_poses(model, system: LigandSystem, num: int, *, box_radius: float = 6.0, steps: int = 200,
                 grid_power: float = 1.0, refine_steps: int = 0, minimize_steps: int = 0, temperature: float = 300.0,
                 seed: int = 0, batch_size: int = 64, device=None, progress=None) -> PoseEnsemble:
    """Draw ``num`` poses of ``system`` from ``model`` (:class:`~digmat.models.LigandScoreModel`).

    Parameters
    ----------
    box_radius
        Å: poses whose centroid lies farther from the site centre are flagged (``in_box``).
    steps
        Reverse-chain steps (network evaluations per pose).
    grid_power
        Step grid t = u^grid_power (> 1: more steps at low noise, where poses are refined).
    refine_steps
        Metropolis steps per pose under the direct Vina energy (inter + intra) at ``temperature`` K
        after sampling (:func:`~digmat.ligand.tempering.refine_poses`; 0: none). Each move leaves the
        Boltzmann density of that energy invariant, so refinement only moves the samples towards the
        ensemble the references sample.
    minimize_steps
        Iterations of local minimisation of every pose, last (:func:`~digmat.ligand.minimize.minimize_poses`;
        0: none): each pose is quenched to the minimum of its basin of the same Vina energy plus a
        hard core (:class:`~digmat.ligand.energy.StericCore`: pocket–ligand heavy-atom pairs and
        the ligand's own pairs, hydrogens included, closer than 0.8 of their van der Waals sum), as
        docking programs report poses. Samples at 300 K of Vina's soft repulsion make contacts
        that PoseBusters calls clashes (N···O at 2.0–2.3 Å), and Vina does not see hydrogens;
        the quenched poses make neither, unless a pose is jammed where no nearby minimum
        is free of them. Binding-mode populations are kept up to poses near a mode's edge.
        ``energy`` stays Vina's.
    batch_size
        Most poses per batch; each batch is an independent replicate for the 95 % intervals, so
        batches are made smaller where that gives at least four of them (``num`` ≥ 4): one batch
        would give a zero-width interval.
    progress
        Optional callable ``progress(done, total)``.
    """
    if num < 1 or steps < 1:
        raise ValueError(f"need num >= 1 and steps >= 1, got {num}, {steps}")
    device = torch.device(device or "cpu")
    diffusion = model.diffusion(system)
    score = model.score_fn(system)
    g = torch.Generator(device="cpu").manual_seed(int(seed))
    xs, Rs, batch = [], [], []
    start = time.perf_counter()
    batch_size = max(1, min(batch_size, -(-num // 4)))  # at least four replicates where num >= 4
    for k, lo in enumerate(range(0, num, batch_size)):
        n = min(batch_size, num - lo)
        prior = diffusion.sample_prior(n, generator=g, dtype=torch.float32)
        out = sample_rigid_sde(diffusion, score, n, steps=steps, grid_power=grid_power, generator=g, dtype=torch.float32,
                               init=RigidState(prior.x.to(device), prior.R.to(device)))
        xs.append(out.x.double().cpu())
        Rs.append(out.R.double().cpu())
        batch.append(np.full(n, k))
        if progress is not None:
            progress(lo + n, num)
    seconds = time.perf_counter() - start
    u, _, vt = torch.linalg.svd(torch.cat(Rs))  # the nearest rotations in float64: exact bond lengths
    state = RigidState(torch.cat(xs), u @ vt)
    extent = float(np.linalg.norm(system.pose.template[system.pose.heavy], axis=1).max())
    scorer = vina_scorer(system.pocket, system.mol, system.center, box_radius + extent + 0.5)

    def vina_energy(x: torch.Tensor) -> torch.Tensor:  # Vina inter + intra (kcal/mol), direct scoring
        parts = [scorer(chunk) for chunk in x.split(256)]
        return torch.cat([p["inter"] + p["intra"] for p in parts])

    refinement = None
    if refine_steps > 0:
        inside = system.centroid_distance(state) <= box_radius
        if inside.any():  # poses outside the box stay as sampled (flagged by in_box)
            refined, _ = refine_poses(system.pose, vina_energy, system.centroids(state)[inside], state.R[inside],
                                      state.x[inside, 3:], system.center, box_radius=box_radius, temperature=temperature,
                                      steps=refine_steps, seed=seed)
            moved = system.state_of(refined.t[0], refined.rotation[0], refined.tau[0], dtype=state.x.dtype)
            x, R = state.x.clone(), state.R.clone()
            x[inside], R[inside] = moved.x, moved.R
            state = RigidState(x, R)
            refinement = {"steps": refine_steps, "poses": int(inside.sum()), "seconds": round(refined.wall_s, 2),
                          "acceptance": {k: float(v[0]) for k, v in refined.acceptance.items()}}
    core = StericCore(system.mol, system.pocket.atoms, system.center, box_radius + extent + 4.0)
    minimization = None
    if minimize_steps > 0:
        before = system.positions(state)
        quenched = minimize_poses(system.pose, lambda x: vina_energy(x) + core(x), system.centroids(state), state.R,
                                  state.x[:, 3:], max_iterations=minimize_steps)
        state = system.state_of(quenched.t, quenched.rotation, quenched.tau, dtype=state.x.dtype)
        minimization = {"iterations": minimize_steps, "poses": int(len(state.x)), "seconds": round(quenched.wall_s, 2),
                        "stopped_fraction": float(quenched.converged.double().mean()),
                        "energy_drop_median": float((quenched.initial_energy - quenched.energy).median()),
                        "moved_median_A": float(np.median(pose_shift(system.pose, before, system.positions(state))))}
    positions = system.positions(state)
    parts = [scorer(chunk) for chunk in positions.split(256)]
    energy = torch.cat([p["inter"] + p["intra"] for p in parts]).numpy()
    vina = torch.cat([p["total"] for p in parts]).numpy()
    in_box = (system.centroid_distance(state) <= box_radius).numpy()
    return PoseEnsemble(system, positions.numpy(), energy, vina, in_box, np.concatenate(batch), float(box_radius), seconds,
                        refinement, minimization, contact_ratio=core.contact_ratio(positions).numpy())


def reference_populations(system: LigandSystem, positions, representatives, *, cutoff: float = 2.0,
                          weights=None) -> np.ndarray:
    """Share of poses (S, N, 3) nearest to each of K reference representatives within ``cutoff`` Å
    (symmetry-aware RMSD), plus a last entry for poses near none; (K + 1,), sums to 1."""
    reps = np.asarray(representatives, float)
    d = system.pose.rmsd(positions, reps)  # (S, K)
    label = np.where(d.min(1) <= cutoff, d.argmin(1), len(reps))
    w = np.ones(len(d)) if weights is None else np.asarray(weights, float)
    return np.bincount(label, weights=w, minlength=len(reps) + 1) / w.sum()


def total_variation(p, q) -> float:
    """½ Σ |p − q| of two distributions over the same bins."""
    return 0.5 * float(np.abs(np.asarray(p, float) - np.asarray(q, float)).sum())
