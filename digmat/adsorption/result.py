"""Results of the reference site search: minima, placements, JSON and structure files.

``ReferenceResult.to_json`` writes a compact, self-contained record (bare
slab, adsorbate, settings, cost, per-placement summaries, and per minimum
its relaxed structure, energy, site, multiplicity, Hessian, vibrational
energies, free energies and probabilities).  ``ReferenceResult.from_json``
reads it back; probabilities at any temperature are recomputed from it, and
equilibrium datasets are regenerated from it deterministically
(:mod:`digmat.adsorption.equilibrium`).  Every file is written to a
temporary name and renamed into place.

Units: Å, eV, K.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator

from digmat.adsorption.relax import atoms_from_dict, atoms_to_dict
from digmat.adsorption.search_config import SearchConfig
from digmat.files import atomic_path, atomic_write_bytes
from digmat.adsorption.thermo import (
    VIB_FLOOR,
    boltzmann_probabilities,
    harmonic_free_energy,
)

__all__ = ["FORMAT", "PlacementRecord", "ReferenceMinimum", "ReferenceResult"]

FORMAT = "digmat-reference/1"


@dataclass
class PlacementRecord:
    """What became of one placement.

    Attributes
    ----------
    index : int
    origin : str
        ``"heuristic"`` or ``"random"``.
    site : str
        Site-finder label (``"ontop"``, ``"bridge"``, ``"hollow"``) or ``"random"``.
    angle, tilt : float
        Initial rotation about the normal and tilt, degrees.
    energy : float or None
        Relaxed energy, eV.
    steps, calls : int
        Optimizer steps and calculator calls spent.
    seconds : float
        Wall time of the relaxation, s.
    converged, cached : bool
    flags : list of str
        Anomalies (``desorbed``, ``dissociated``, ``surface_changed``,
        ``intercalated``), ``unconverged``, ``failed`` or ``pending``; empty
        for a good relaxation.
    site_kind : str or None
        Site kind of the relaxed structure (good relaxations only;
        :class:`~digmat.adsorption.SiteAssigner`).
    minimum : int or None
        Index of the minimum it relaxed into.
    error : str or None
        Calculator error message of a failed relaxation.
    positions : list or None
        Relaxed positions, Å, shape ``(N, 3)`` (slab atoms, then adsorbate
        atoms), of a relaxation discarded as an anomaly, so that its flags can
        be re-checked from the result alone (:meth:`ReferenceResult.relaxed_placement`).
    """

    index: int
    origin: str
    site: str
    angle: float = 0.0
    tilt: float = 0.0
    energy: float | None = None
    steps: int = 0
    calls: int = 0
    seconds: float = 0.0
    converged: bool = False
    cached: bool = False
    flags: list[str] = field(default_factory=list)
    site_kind: str | None = None
    minimum: int | None = None
    error: str | None = None
    positions: list | None = None

    @classmethod
    def from_placement(cls, atoms: Atoms) -> PlacementRecord:
        info = atoms.info
        return cls(int(info.get("placement_index", -1)), str(info.get("placement_origin", "")),
                   str(info.get("placement_site", "")), float(info.get("placement_angle", 0.0)),
                   float(info.get("placement_tilt", 0.0)))

    def to_dict(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        for k in ("angle", "tilt", "seconds"):
            d[k] = round(float(d[k]), 4)
        return d


@dataclass
class ReferenceMinimum:
    """A distinct adsorption minimum.

    Attributes
    ----------
    atoms : ase.Atoms
        Relaxed structure (slab + adsorbate) of the lowest-energy member.
    energy : float
        Total energy, eV.
    site_kind : str
        One of :data:`~digmat.adsorption.SITE_KINDS`: the kind of the site point nearest to
        ``adsorbate_atom`` (:class:`~digmat.adsorption.SiteAssigner`, the rule that labels
        a model's samples too).
    binding_atoms : list of int
        Slab atoms of that site point (one, two, three or four).  The atoms within the
        distance window of ``adsorbate_atom`` — its coordination — are
        ``classify_site(atoms, adsorbate_atom).binding_atoms``.
    binding_symbols : list of str
    adsorbate_atom : int
        Index (in ``atoms``) of the adsorbate atom whose site is reported.
    site_key : str
        De-duplication key (canonical site of every anchored adsorbate atom).
    multiplicity : int
        Number of symmetry-equivalent copies in the cell, ``g``.
    placements : list of int
        Placements that relaxed into this minimum.
    hessian : numpy.ndarray or None
        ``(3k, 3k)`` eV/Å² over ``hessian_indices``.
    hessian_indices : list of int
    vib_energies : numpy.ndarray or None
        ``ħω`` per mode, eV (imaginary modes negative).
    n_imaginary, n_soft : int
    free_energy : dict of float to float
        ``F_vib(T)`` per temperature, eV.
    probability : dict of float to float
        Boltzmann probability ``p_i(T)`` per temperature.
    flags : list of str
        ``"saddle"`` when the Hessian has imaginary modes.
    """

    atoms: Atoms
    energy: float
    site_kind: str
    binding_atoms: list[int]
    binding_symbols: list[str]
    adsorbate_atom: int
    site_key: str
    multiplicity: int = 1
    placements: list[int] = field(default_factory=list)
    hessian: np.ndarray | None = None
    hessian_indices: list[int] = field(default_factory=list)
    vib_energies: np.ndarray | None = None
    n_imaginary: int = 0
    n_soft: int = 0
    free_energy: dict[float, float] = field(default_factory=dict)
    probability: dict[float, float] = field(default_factory=dict)
    flags: list[str] = field(default_factory=list)

    def vib_free_energy(self, temperature: float) -> float:
        """Harmonic ``F_vib(T)``, eV (0 without vibrations)."""
        if self.vib_energies is None:
            return 0.0
        return harmonic_free_energy(self.vib_energies, temperature, floor=VIB_FLOOR)

    def to_dict(self) -> dict[str, Any]:
        return {
            "energy": round(self.energy, 6), "site_kind": self.site_kind,
            "binding_atoms": list(self.binding_atoms), "binding_symbols": list(self.binding_symbols),
            "adsorbate_atom": self.adsorbate_atom, "site_key": self.site_key,
            "multiplicity": self.multiplicity, "placements": list(self.placements),
            "flags": list(self.flags), "n_imaginary": self.n_imaginary, "n_soft": self.n_soft,
            "hessian_indices": list(self.hessian_indices),
            "hessian": None if self.hessian is None else np.round(self.hessian, 5).tolist(),
            "vib_energies": None if self.vib_energies is None else np.round(self.vib_energies, 6).tolist(),
            "free_energy": {f"{t:g}": round(v, 6) for t, v in self.free_energy.items()},
            "probability": {f"{t:g}": float(f"{v:.6g}") for t, v in self.probability.items()},
            "atoms": atoms_to_dict(self.atoms),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ReferenceMinimum:
        return cls(
            atoms=atoms_from_dict(d["atoms"]), energy=float(d["energy"]), site_kind=d["site_kind"],
            binding_atoms=list(d["binding_atoms"]), binding_symbols=list(d["binding_symbols"]),
            adsorbate_atom=int(d["adsorbate_atom"]), site_key=d["site_key"],
            multiplicity=int(d["multiplicity"]), placements=list(d["placements"]), flags=list(d["flags"]),
            n_imaginary=int(d["n_imaginary"]), n_soft=int(d["n_soft"]),
            hessian_indices=list(d["hessian_indices"]),
            hessian=None if d["hessian"] is None else np.asarray(d["hessian"], float),
            vib_energies=None if d["vib_energies"] is None else np.asarray(d["vib_energies"], float),
            free_energy={float(t): float(v) for t, v in d["free_energy"].items()},
            probability={float(t): float(v) for t, v in d["probability"].items()},
        )


@dataclass
class ReferenceResult:
    """Outcome of :func:`~digmat.adsorption.reference_search`.

    Attributes
    ----------
    slab : ase.Atoms
        The bare slab searched.
    adsorbate : ase.Atoms
        The adsorbate (``info["binding_indices"]``).
    calculator : str
        Calculator name.
    temperatures : tuple of float
        K.
    minima : list of ReferenceMinimum
        Distinct minima, lowest energy first.
    placements : list of PlacementRecord
    complete : bool
        False when the budget stopped the search before every placement was
        relaxed (then ``minima`` is empty).
    system_id : str
    settings : dict
        Search settings: the :class:`~digmat.adsorption.SearchConfig` fields except the
        temperatures (see :meth:`search_config`), and ``vib_floor`` (eV).
    cost : dict
        Calculator calls (energy + forces evaluations) that the result cost
        (``calls`` = ``relax_calls`` + ``hessian_calls``, cached work
        included), those made by the run that returned it (``new_calls``),
        relaxations run and reused (``new_relaxations``,
        ``cached_relaxations``), and seconds (``wall_seconds`` of the run,
        ``relax_seconds`` summed over all relaxations).
    """

    slab: Atoms
    adsorbate: Atoms
    calculator: str
    temperatures: tuple[float, ...]
    minima: list[ReferenceMinimum]
    placements: list[PlacementRecord]
    complete: bool = True
    system_id: str = ""
    settings: dict[str, Any] = field(default_factory=dict)
    cost: dict[str, Any] = field(default_factory=dict)

    def search_config(self) -> SearchConfig:
        """The :class:`~digmat.adsorption.SearchConfig` this result was searched with
        (rebuilt from ``settings`` and ``temperatures``; fields an older file lacks take their
        defaults), e.g. to rerun it: ``reference_search(r.slab, r.adsorbate, r.calculator,
        r.search_config())``."""
        return SearchConfig.from_settings(self.settings, self.temperatures)

    # ------------------------------------------------------------ thermodynamics
    def require_vibrations(self, purpose: str) -> None:
        """Raise ``ValueError`` unless this is a complete search with minima and their Hessians
        (``purpose`` names what needs them, for the message)."""
        if not self.complete or not self.minima:
            raise ValueError(f"{self.system_id}: {purpose} needs a complete search with minima")
        if any(m.hessian is None for m in self.minima):
            raise ValueError(f"{self.system_id}: searched without vibrations; {purpose} needs the minima's Hessians")

    def probabilities(self, temperature: float) -> np.ndarray:
        """Boltzmann probability of each minimum at ``temperature`` K, shape ``(n_minima,)``.

        ``p_i ∝ g_i exp(−(E_i + F_vib,i(T)) / k_B T)`` over the true minima;
        saddle points (flag ``"saddle"``) get 0 unless every minimum is one.
        """
        if not self.minima:
            raise ValueError(f"{self.system_id}: no minima (complete={self.complete})")
        usable = np.array(["saddle" not in m.flags for m in self.minima])
        if not usable.any():
            usable[:] = True
        idx = np.flatnonzero(usable)
        g = [self.minima[i].energy + self.minima[i].vib_free_energy(temperature) for i in idx]
        p = np.zeros(len(self.minima))
        p[idx] = boltzmann_probabilities(g, [self.minima[i].multiplicity for i in idx], temperature)
        return p

    def site_probabilities(self, temperature: float) -> dict[str, float]:
        """Total probability of each site kind at ``temperature`` K."""
        out: dict[str, float] = {}
        for m, p in zip(self.minima, self.probabilities(temperature), strict=True):
            out[m.site_kind] = out.get(m.site_kind, 0.0) + float(p)
        return out

    def refresh_probabilities(self) -> None:
        """Fill every minimum's ``free_energy`` and ``probability`` at ``temperatures``."""
        for t in self.temperatures:
            for m, p in zip(self.minima, self.probabilities(t), strict=True):
                m.free_energy[t] = m.vib_free_energy(t)
                m.probability[t] = float(p)

    # ------------------------------------------------------------ serialisation
    def to_dict(self) -> dict[str, Any]:
        ads = atoms_to_dict(self.adsorbate)
        ads.update(binding_indices=[int(i) for i in self.adsorbate.info["binding_indices"]],
                   name=str(self.adsorbate.info.get("name", self.adsorbate.get_chemical_formula())))
        sites = {f"{t:g}": self.site_probabilities(t) for t in self.temperatures} if self.minima else {}
        return {
            "format": FORMAT, "system_id": self.system_id, "calculator": self.calculator,
            "temperatures": list(self.temperatures), "complete": self.complete,
            "settings": self.settings, "cost": self.cost,
            "site_probabilities": sites,
            "minima": [m.to_dict() for m in self.minima],
            "placements": [p.to_dict() for p in self.placements],
            "slab": atoms_to_dict(self.slab), "adsorbate": ads,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ReferenceResult:
        if d.get("format") != FORMAT:
            raise ValueError(f"not a digmat reference result (format {d.get('format')!r}, expected {FORMAT!r})")
        adsorbate = atoms_from_dict(d["adsorbate"])
        adsorbate.info.update(binding_indices=list(d["adsorbate"]["binding_indices"]), name=d["adsorbate"]["name"])
        return cls(
            slab=atoms_from_dict(d["slab"]), adsorbate=adsorbate, calculator=d["calculator"],
            temperatures=tuple(float(t) for t in d["temperatures"]),
            minima=[ReferenceMinimum.from_dict(m) for m in d["minima"]],
            placements=[PlacementRecord(**p) for p in d["placements"]],
            complete=bool(d["complete"]), system_id=d["system_id"],
            settings=dict(d["settings"]), cost=dict(d["cost"]),
        )

    def to_json(self, path: str | os.PathLike) -> Path:
        """Write the result as JSON, atomically; returns the path."""

        blob = json.dumps(self.to_dict(), separators=(",", ":")).encode()
        return atomic_write_bytes(path, lambda fh: fh.write(blob))

    @classmethod
    def from_json(cls, path: str | os.PathLike) -> ReferenceResult:
        """Read a result written by :meth:`to_json`."""
        p = Path(path)
        if not p.is_file():
            raise FileNotFoundError(f"no reference result at {str(p)!r}")
        try:
            data = json.loads(p.read_text())
        except ValueError as exc:
            raise ValueError(f"{str(p)!r} is not valid JSON: {exc}") from exc
        return cls.from_dict(data)

    def relaxed_placement(self, index: int) -> tuple[Atoms, Atoms] | None:
        """A discarded relaxation's structure, paired with a reference for re-checking its anomalies.

        Parameters
        ----------
        index : int
            Position of the placement in :attr:`placements`.

        Returns
        -------
        (ase.Atoms, ase.Atoms) or None
            ``(reference, relaxed)``: the bare slab with the adsorbate as
            built (its internal bonds and the slab's are what
            :func:`~digmat.adsorption.anomalies.detect_anomalies` compares)
            and the relaxed structure, both with OC20 tags; None when the
            record holds no positions (a good relaxation, or a result written
            before positions were kept).
        """
        record = self.placements[index]
        if record.positions is None:
            return None
        reference = self.slab.copy()
        reference.set_constraint()
        adsorbate = Atoms(self.adsorbate.numbers, positions=self.adsorbate.positions)
        adsorbate.set_tags(np.full(len(adsorbate), 2))
        reference.extend(adsorbate)
        relaxed = reference.copy()
        relaxed.positions = np.asarray(record.positions, float)
        return reference, relaxed

    def minimum_atoms(self) -> list[Atoms]:
        """Each minimum's structure with its energy (SinglePointCalculator) and facts in ``info``."""
        out = []
        for k, m in enumerate(self.minima):
            a = m.atoms.copy()
            a.calc = SinglePointCalculator(a, energy=m.energy)
            a.info.update(
                system_id=self.system_id, minimum=k, site_kind=m.site_kind, multiplicity=m.multiplicity,
                binding_atoms=" ".join(map(str, m.binding_atoms)) or "none",
                binding_symbols=" ".join(m.binding_symbols) or "none",
                flags=" ".join(m.flags) or "none", n_imaginary=m.n_imaginary,
            )
            for t, p in m.probability.items():
                a.info[f"probability_{t:g}K"] = p
                a.info[f"free_energy_vib_{t:g}K"] = m.free_energy[t]
            out.append(a)
        return out

    def write_structures(self, path: str | os.PathLike) -> Path:
        """Write the minima as extxyz, or as an ASE database when the suffix is ``.db``; atomically."""
        path = Path(path)
        images = self.minimum_atoms()
        with atomic_path(path) as tmp:
            if path.suffix == ".db":
                import ase.db

                with ase.db.connect(tmp, type="db") as db:
                    for a in images:
                        text = {"binding_atoms", "binding_symbols", "flags"}
                        pairs = {k: v for k, v in a.info.items()
                                 if isinstance(v, (int, float, str)) and k not in text}
                        db.write(a, key_value_pairs=pairs, data={k: a.info[k] for k in text})
            else:
                import ase.io

                ase.io.write(tmp, images, format="extxyz")
        return path

    def summary(self) -> str:
        """Human-readable table of the minima and their probabilities."""
        head = f"{self.system_id} ({self.calculator}): {len(self.minima)} minima from {len(self.placements)} placements"
        if not self.minima:
            return head + ("" if self.complete else " (incomplete: budget reached)")
        e0 = min(m.energy for m in self.minima)
        temps = "".join(f"  p({t:g} K)" for t in self.temperatures)
        lines = [head, f"  #  site         ΔE/eV  g   binding{'':8s}{temps}  flags"]
        for k, m in enumerate(self.minima):
            probs = "".join(f"  {m.probability.get(t, float('nan')):9.4f}" for t in self.temperatures)
            binding = "-".join(m.binding_symbols) or "-"
            lines.append(f"{k:3d}  {m.site_kind:11s} {m.energy - e0:6.3f} {m.multiplicity:3d}  "
                         f"{binding:14s}{probs}  {' '.join(m.flags)}")
        return "\n".join(lines)
