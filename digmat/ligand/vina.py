"""AutoDock Vina's scoring function as a batched, differentiable torch module.

Re-implements ``sf_name='vina'`` of AutoDock Vina 1.2 (``src/lib``: ``atom_constants.h``,
``potentials.h``, ``model.cpp``, ``parse_pdbqt.cpp``, ``conf_independent.cpp``, ``vina.cpp``):

* XS typing from AutoDock (AD) types and covalent bonds (:mod:`digmat.ligand.vina_types`, whose
  names this module re-exports);
* five pair terms of the surface distance ``d = r - R_i - R_j`` (gauss1, gauss2, repulsion,
  hydrophobic, non-directional H-bond), pair cutoff 8 Å, Vina's default weights, and
  Vina's ``curl`` (e -> e v / (v + e), v = 1000) of positive per-atom / per-pair energies;
* the intramolecular pairs of Vina's ligand tree (atoms that can move relative to each other
  and are more than three bonds apart);
* ``total = inter / (1 + w_rot N_rot)``, what ``Vina.score()`` reports (its intra term
  cancels against the unbound energy of the same pose).

Units: positions in Å, energies in kcal/mol (:class:`VinaCalculator`: eV, eV/Å).
Hydrogens (H, HD) carry no XS type and never contribute energy.
"""

from __future__ import annotations

import numpy as np
import torch
from ase.calculators.calculator import Calculator, all_changes
from torch import Tensor
from torch.autograd.function import once_differentiable

from digmat.ligand.vina_types import (XS_ACCEPTOR, XS_DONOR, XS_HYDROPHOBIC, XS_NAMES, XS_RADII, VinaLigand,
                                      ligand_ad_types, ligand_positions_from_pdbqt, prepare_ligand, receptor_ad_types,
                                      vina_bonds, write_receptor_pdbqt, xs_types)

__all__ = ["XS_NAMES", "XS_RADII", "VINA_WEIGHTS", "vina_bonds", "xs_types", "receptor_ad_types",
           "write_receptor_pdbqt", "ligand_ad_types", "prepare_ligand", "VinaLigand",
           "ligand_positions_from_pdbqt", "VinaScore", "VinaCalculator", "curl"]

#: ``Vina.set_vina_weights`` defaults: gauss1, gauss2, repulsion, hydrophobic, hydrogen, rot.
VINA_WEIGHTS = (-0.035579, -0.005156, 0.840245, -0.035069, -0.587439, 0.05846)
_CURL_V = 1000.0        # authentic_v of Vina::score
_TABLE_FACTOR = 32.0    # precalculate: table points per Å² of r²


def _pair_energy(d, a, s, c, w, need_grad):
    """Weighted Vina pair energy of surface distance ``d`` and, optionally, dE/dd."""
    g1 = torch.exp(-(2.0 * d) ** 2)              # gauss1: offset 0, width 0.5
    dm3 = d - 3.0
    g2 = torch.exp(-(0.5 * dm3) ** 2)            # gauss2: offset 3, width 2
    neg = torch.clamp(d, max=0.0)                # repulsion d² for d < 0
    t = torch.clamp((a - d) * s, 0.0, 1.0)       # hydrophobic / H-bond slope_step
    e = w[0] * g1 + w[1] * g2 + w[2] * neg * neg + c * t
    if not need_grad:
        return e, None
    ramp = ((t > 0) & (t < 1)).to(d.dtype)
    return e, -8.0 * w[0] * d * g1 - 0.5 * w[1] * dm3 * g2 + 2.0 * w[2] * neg - c * s * ramp


def curl(e):
    """Vina's ``curl``: e -> e v / (v + e) for e > 0, v = 1000."""
    ep = e.clamp_min(0.0)
    return e - ep + ep * (_CURL_V / (_CURL_V + ep))


class _InterAtomEnergy(torch.autograd.Function):
    """Receptor energy per ligand atom; its gradient is computed analytically in the forward pass."""

    @staticmethod
    def forward(ctx, x, scorer):
        e, g = scorer._inter_chunk(x, scorer.lig_xs, ctx.needs_input_grad[0])
        ctx.save_for_backward(g if g is not None else torch.zeros_like(x))
        return e

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_e):
        (g,) = ctx.saved_tensors
        return grad_e[..., None] * g, None


class VinaScore(torch.nn.Module):
    """Batched Vina score of one ligand in one rigid receptor.

    Parameters
    ----------
    receptor_positions : array_like, shape (N_rec, 3), Å
    receptor_ad_types : sequence of str or None, length N_rec
        E.g. :func:`receptor_ad_types`; None atoms are left out (as from the PDBQT). XS types
        come from :func:`vina_bonds` over the whole receptor, before cropping to the box.
    ligand : rdkit.Chem.Mol (explicit H, 3D conformer) or VinaLigand
        Its atom order is the order of ``ligand_positions``.
    box_center, box_size : array_like, shape (3,), Å, optional
        Search box; default the ligand conformer's bounding box plus ``box_padding`` (Å) per
        side. Receptor atoms farther than ``cutoff`` + 1 Å from the box are dropped: scores
        are Vina's for ligand atoms inside the box (Vina refuses poses outside; no penalty here).
    weights : 6 floats, optional; default :data:`VINA_WEIGHTS`
    cutoff : float, Å; pair cutoff (Vina: 8)
    max_pairs : int
        Ligand-receptor pairs screened at once: poses go in chunks of
        ``max(1, max_pairs // (n_heavy * N_rec_kept))``, so peak memory is a few
        ``8 * max_pairs`` bytes (default 2**22 pairs: ~32 MB per buffer, e.g. 1000 poses x 30
        atoms x 3000 receptor atoms run in ~22 chunks). Only pairs within the cutoff are
        evaluated. The receptor-term gradient is computed analytically chunk by chunk, so
        autograd keeps only (B, n_heavy, 3) for it: first derivatives only.
    dtype : torch.dtype; default float64
    vina_table : bool
        Reproduce Vina's r² lookup table (``precalculate``: 32 points per Å², each bin the mean
        of its ends) for the energies, to match ``Vina.score()`` to ~1e-14 kcal/mol; gradients
        stay those of the analytic function. Default False: the analytic, smooth function.

    Notes
    -----
    ``forward(ligand_positions)``, shape (B, n_atoms, 3) or (n_atoms, 3) Å, returns a dict of
    (B,) (or 0-d) tensors in kcal/mol: ``inter`` (ligand-receptor), ``intra`` (ligand internal
    pairs) and ``total = inter / (1 + w_rot N_rot)`` (``Vina.score()[0]``).
    """

    def __init__(self, receptor_positions, receptor_ad_types, ligand, *, box_center=None, box_size=None,
                 box_padding=6.0, weights=None, cutoff=8.0, max_pairs=2 ** 22, dtype=torch.float64,
                 vina_table=False):
        super().__init__()
        lig = ligand if isinstance(ligand, VinaLigand) else prepare_ligand(ligand)
        self.ligand, self.n_atoms, self.num_tors = lig, len(lig.ad_types), float(lig.num_tors)
        self.weights = tuple(float(x) for x in (weights or VINA_WEIGHTS))
        self.cutoff, self.max_pairs, self.vina_table = float(cutoff), int(max_pairs), bool(vina_table)
        keep = [i for i, t in enumerate(receptor_ad_types) if t is not None]
        rpos = np.asarray(receptor_positions, dtype=np.float64)[keep]
        rad = [receptor_ad_types[i] for i in keep]
        rxs = xs_types(rad, vina_bonds(rad, rpos))
        if box_center is None or box_size is None:
            if isinstance(ligand, VinaLigand):
                raise ValueError("give box_center and box_size with a VinaLigand")
            lpos = ligand.GetConformer().GetPositions()[lig.xs >= 0]
            lo, hi = lpos.min(0) - box_padding, lpos.max(0) + box_padding
            box_center, box_size = (lo + hi) / 2, hi - lo
        self.box_center = np.asarray(box_center, dtype=np.float64)
        self.box_size = np.asarray(box_size, dtype=np.float64)
        gap = np.clip(np.abs(rpos - self.box_center) - self.box_size / 2, 0.0, None)
        sel = (rxs >= 0) & ((gap ** 2).sum(1) < (self.cutoff + 1.0) ** 2)
        n_t, w = len(XS_NAMES), self.weights
        tab = np.zeros((n_t, n_t, 4))           # optimal distance d0, ramp start a, ramp slope s, weight c
        for t1 in range(n_t):
            for t2 in range(n_t):
                tab[t1, t2, 0] = XS_RADII[t1] + XS_RADII[t2]
                if t1 in XS_HYDROPHOBIC and t2 in XS_HYDROPHOBIC:
                    tab[t1, t2, 1:] = (1.5, 1.0, w[3])          # slope_step(bad 1.5, good 0.5)
                elif (t1 in XS_DONOR and t2 in XS_ACCEPTOR) or (t2 in XS_DONOR and t1 in XS_ACCEPTOR):
                    tab[t1, t2, 1:] = (0.0, 1 / 0.7, w[4])      # slope_step(bad 0, good -0.7)
        heavy, pairs = np.flatnonzero(lig.xs >= 0), lig.intra_pairs
        self.register_buffer("heavy", torch.as_tensor(heavy))
        self.register_buffer("lig_xs", torch.as_tensor(lig.xs[heavy]))
        self.register_buffer("rec_pos", torch.as_tensor(rpos[sel], dtype=dtype))
        self.register_buffer("rec_xs", torch.as_tensor(rxs[sel]))
        self.register_buffer("pair_table", torch.as_tensor(tab.reshape(-1, 4), dtype=dtype))
        self.register_buffer("intra_i", torch.as_tensor(pairs[:, 0]))
        self.register_buffer("intra_j", torch.as_tensor(pairs[:, 1]))
        self.register_buffer("intra_params", torch.as_tensor(tab[lig.xs[pairs[:, 0]], lig.xs[pairs[:, 1]]],
                                                             dtype=dtype).reshape(-1, 4))

    def _energy(self, r2, params, need_grad):
        """Pair energies, dE/dr (analytic) and r for squared distances ``r2`` below the cutoff."""
        d0, a, s, c = params.unbind(-1)
        r = r2.clamp_min(1e-24).sqrt()
        e, de = _pair_energy(r - d0, a, s, c, self.weights, need_grad)
        if self.vina_table:
            k = torch.floor(r2.detach() * _TABLE_FACTOR)
            e = 0.0
            for kk in (k, k + 1):
                rk = (kk / _TABLE_FACTOR).sqrt()
                ek = _pair_energy(rk - d0, a, s, c, self.weights, False)[0]
                e = e + 0.5 * torch.where(rk < self.cutoff, ek, torch.zeros_like(ek))
        return e, de, r

    def _inter_chunk(self, x, types, need_grad):
        """(b, M, 3) atoms of XS ``types`` (M,) -> receptor energy per atom (b, M), dE/dx (b, M, 3)."""
        b, m, _ = x.shape
        y = self.rec_pos
        approx = (x * x).sum(-1)[..., None] + (y * y).sum(-1) - 2.0 * x @ y.T
        bi, mi, ri = torch.nonzero(approx < (self.cutoff + 0.05) ** 2, as_tuple=True)
        diff = x[bi, mi] - y[ri]
        r2 = (diff * diff).sum(-1)
        inside = r2 < self.cutoff ** 2
        bi, mi, ri, diff, r2 = bi[inside], mi[inside], ri[inside], diff[inside], r2[inside]
        e, de, r = self._energy(r2, self.pair_table[types[mi] * len(XS_NAMES) + self.rec_xs[ri]], need_grad)
        flat = bi * m + mi
        e_atom = x.new_zeros(b * m).index_add_(0, flat, e).view(b, m)
        if not need_grad:
            return e_atom, None
        return e_atom, x.new_zeros(b * m, 3).index_add_(0, flat, (de / r)[:, None] * diff).view(b, m, 3)

    def forward(self, ligand_positions) -> dict[str, Tensor]:
        """Score poses (B, n_atoms, 3) or (n_atoms, 3) Å; see the class notes for the output."""
        x = torch.as_tensor(ligand_positions).to(self.rec_pos)
        single = x.dim() == 2
        x = x[None] if single else x
        if x.shape[-2] != self.n_atoms:
            raise ValueError(f"expected {self.n_atoms} ligand atoms, got {x.shape[-2]}")
        xh = x[:, self.heavy]
        per = max(1, self.max_pairs // max(1, xh.shape[1] * self.rec_pos.shape[0]))
        inter = curl(torch.cat([_InterAtomEnergy.apply(c, self) for c in xh.split(per)])).sum(-1)
        intra = self.intra(x)
        out = {"total": inter / (1.0 + self.weights[5] * self.num_tors), "inter": inter, "intra": intra}
        return {k: v[0] for k, v in out.items()} if single else out

    def intra(self, ligand_positions: Tensor) -> Tensor:
        """Vina's intramolecular energy (B,) kcal/mol of poses (B, n_atoms, 3) Å (differentiable)."""
        x = torch.as_tensor(ligand_positions).to(self.rec_pos)
        diff = x[:, self.intra_i] - x[:, self.intra_j]
        r2 = (diff * diff).sum(-1)
        e = self._energy(r2, self.intra_params.expand(r2.shape + (4,)), False)[0]
        return torch.where(r2 < self.cutoff ** 2, curl(e), torch.zeros_like(e)).sum(-1)

    @torch.no_grad()
    def probe_energy(self, points: Tensor, xs_type: int) -> Tensor:
        """Receptor energy (P,) kcal/mol, before ``curl``, of a probe atom of one XS type at
        ``points`` (P, 3) Å: the value of Vina's affinity map for that type."""
        pts = torch.as_tensor(points).to(self.rec_pos)
        types = torch.full((len(pts),), int(xs_type), device=pts.device)
        step = max(1, self.max_pairs // max(1, self.rec_pos.shape[0]))
        return torch.cat([self._inter_chunk(p[None], t, False)[0][0]
                          for p, t in zip(pts.split(step), types.split(step))])


class VinaCalculator(Calculator):
    """ASE calculator: Vina energy and forces of a ligand in the fixed receptor of a :class:`VinaScore`.

    Parameters
    ----------
    score : VinaScore
    term : {"total", "inter", "intra", "inter+intra"}
        ``total`` is ``Vina.score()[0]`` (the normalised binding score); ``inter+intra`` is the
        unnormalised objective Vina's docking optimises.

    Notes
    -----
    ``atoms`` holds the ligand only, in the RDKit atom order of ``score``, positions in Å.
    ``energy`` is in eV (kcal/mol x ``ase.units.kcal / ase.units.mol``); ``forces`` = -dE/dx
    in eV/Å, shape (n_atoms, 3), zero on hydrogens.
    """

    implemented_properties = ["energy", "forces"]

    def __init__(self, score: VinaScore, term: str = "total", **kwargs):
        super().__init__(**kwargs)
        if term not in ("total", "inter", "intra", "inter+intra"):
            raise ValueError(f"unknown term {term!r}")
        self.score, self.term = score, term

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        from ase import units

        super().calculate(atoms, properties, system_changes)
        x = torch.tensor(self.atoms.get_positions(), dtype=self.score.rec_pos.dtype,
                         device=self.score.rec_pos.device, requires_grad=True)
        out = self.score(x)
        e = out["inter"] + out["intra"] if self.term == "inter+intra" else out[self.term]
        (g,) = torch.autograd.grad(e, x)
        conv = units.kcal / units.mol
        self.results["energy"] = float(e.detach()) * conv
        self.results["forces"] = -g.detach().cpu().numpy() * conv
