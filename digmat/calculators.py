"""ASE calculators by name, and batched single-point evaluation.

digmat's target distribution ``p(R) ∝ exp(-E(R) / k_B T)`` needs an energy
model ``E``.  Every energy model in digmat is an ASE
:class:`~ase.calculators.calculator.Calculator`, obtained by name:

==========  ============================================================
name        model
==========  ============================================================
``emt``     ASE's effective-medium theory (Al Cu Ag Au Ni Pd Pt + H C N O).
            Instant, for tests only: its adsorption energies barely
            separate sites and it breaks molecules such as CH3CO apart.
``chgnet``  CHGNet universal potential, model ``0.3.0`` (MPtrj); the
            weights ship inside the ``chgnet`` wheel.
``sevenn``  SevenNet-0 universal potential (``7net-0``, 11 Jul 2024); the
            weights ship inside the ``sevenn`` wheel.
==========  ============================================================

The universal potentials are the physical default and are optional
dependencies: ``pip install "digmat[potentials]"``.  Nothing here downloads
anything at run time.
"""

from __future__ import annotations

import contextlib
import difflib
import io
import warnings
from collections.abc import Callable, Sequence

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator
from ase.calculators.singlepoint import SinglePointCalculator

__all__ = [
    "PotentialNotInstalledError",
    "calculate_batch",
    "check_calculator_name",
    "get_calculator",
    "list_calculators",
]

_INSTALL_HINT = 'pip install "digmat[potentials]"'


class PotentialNotInstalledError(ImportError):
    """A calculator's optional package is missing (install ``digmat[potentials]``)."""


def _make_emt(device: str = "cpu", **kwargs) -> Calculator:
    from ase.calculators.emt import EMT

    return EMT(**kwargs)


def _require(package: str, name: str) -> None:
    try:
        __import__(package)
    except ImportError as exc:
        raise PotentialNotInstalledError(
            f"calculator {name!r} needs the optional package {package!r}, which is "
            f"not installed ({exc}). Install it with: {_INSTALL_HINT}"
        ) from exc


def _make_chgnet(device: str = "cpu", *, model_name: str = "0.3.0", **kwargs) -> Calculator:
    _require("chgnet", "chgnet")
    from chgnet.model import CHGNet, CHGNetCalculator

    # CHGNet's graph code converts a tensor that requires grad on every call (harmless, but torch
    # warns once per process, and the CLI would show it as digmat's own warning)
    warnings.filterwarnings("ignore", message="Converting a tensor with requires_grad=True to a scalar", category=UserWarning)
    # CHGNet prints device/parameter banners on stdout; keep library output quiet.
    with contextlib.redirect_stdout(io.StringIO()):
        model = CHGNet.load(model_name=model_name, use_device=device, verbose=False)
        calc = CHGNetCalculator(model=model, use_device=device, **kwargs)
    return calc


def _make_sevenn(device: str = "cpu", *, model: str = "7net-0", **kwargs) -> Calculator:
    _require("sevenn", "sevenn")
    from sevenn.calculator import SevenNetCalculator

    with warnings.catch_warnings():
        # "no tensor-product accelerator" notice: irrelevant on CPU.
        warnings.simplefilter("ignore", UserWarning)
        return SevenNetCalculator(model=model, device=device, **kwargs)


_REGISTRY: dict[str, Callable[..., Calculator]] = {
    "emt": _make_emt,
    "chgnet": _make_chgnet,
    "sevenn": _make_sevenn,
}
ALIASES = {"sevennet": "sevenn", "7net-0": "sevenn", "sevennet-0": "sevenn"}
_PACKAGES = {"chgnet": "chgnet", "sevenn": "sevenn"}  # optional package of each potential


def list_calculators() -> list[str]:
    """Names accepted by :func:`get_calculator`.

    Returns
    -------
    list of str
        Sorted calculator names (``emt``, ``chgnet``, ``sevenn``), whether or
        not their optional packages are installed.
    """
    return sorted(_REGISTRY)


def get_calculator(name: str, *, device: str = "cpu", **kwargs) -> Calculator:
    """Return a fresh ASE calculator by name.

    Parameters
    ----------
    name : str
        One of :func:`list_calculators` (case-insensitive; ``sevennet`` and
        ``7net-0`` are accepted for ``sevenn``).
    device : str, default "cpu"
        Torch device for the machine-learned potentials (``"cpu"``,
        ``"cuda"``, ``"cuda:1"``...).  Ignored by ``emt``.
    **kwargs
        Passed to the underlying calculator.  ``chgnet`` also accepts
        ``model_name`` (default ``"0.3.0"``), ``sevenn`` accepts ``model``
        (default ``"7net-0"``).

    Returns
    -------
    ase.calculators.calculator.Calculator
        Energies in eV, forces in eV/Å.

    Raises
    ------
    ValueError, PotentialNotInstalledError
        As :func:`check_calculator_name`.
    """
    key = check_calculator_name(name)
    return _REGISTRY[key](device=device, **kwargs)


def check_calculator_name(name: str) -> str:
    """Check a calculator name without building the calculator; return its registry key.

    Cheap (no model is loaded): use it to refuse a bad name or a missing optional package
    before expensive work.

    Raises
    ------
    ValueError
        Unknown name (the message lists the available ones and close matches).
    PotentialNotInstalledError
        The optional package of the requested potential is missing.
    """
    import importlib.util

    if not isinstance(name, str):
        raise ValueError(f"calculator name must be a string, got {type(name).__name__}")
    key = name.strip().lower()
    key = ALIASES.get(key, key)
    if key not in _REGISTRY:
        close = difflib.get_close_matches(key, list(_REGISTRY) + list(ALIASES), n=3)
        hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise ValueError(f"unknown calculator {name!r}; available: {', '.join(list_calculators())}.{hint}")
    package = _PACKAGES.get(key)
    if package is not None and importlib.util.find_spec(package) is None:
        raise PotentialNotInstalledError(f"calculator {key!r} needs the optional package {package!r}, which is not installed; "
                                         f"install it with: {_INSTALL_HINT}")
    return key


# --------------------------------------------------------------------------
# batched evaluation
# --------------------------------------------------------------------------


def _attach(atoms: Atoms, energy: float, forces: np.ndarray) -> Atoms:
    out = atoms.copy()
    out.calc = SinglePointCalculator(out, energy=float(energy), forces=np.asarray(forces, float))
    return out


def _batch_chgnet(images: Sequence[Atoms], calc: Calculator, batch_size: int) -> list[Atoms]:
    from pymatgen.io.ase import AseAtomsAdaptor

    model = calc.model
    structures = [AseAtomsAdaptor.get_structure(a) for a in images]
    preds = model.predict_structure(structures, task="ef", batch_size=batch_size)
    if isinstance(preds, dict):
        preds = [preds]
    out = []
    for atoms, pred in zip(images, preds, strict=True):
        # CHGNet predicts energy per atom when the model is intensive.
        factor = len(atoms) if model.is_intensive else 1
        out.append(_attach(atoms, float(pred["e"]) * factor, pred["f"]))
    return out


def _batch_sevenn(images: Sequence[Atoms], calc: Calculator, batch_size: int) -> list[Atoms]:
    from sevenn._keys import PRED_FORCE, PRED_TOTAL_ENERGY
    from sevenn.atom_graph_data import AtomGraphData
    from sevenn.train.dataload import unlabeled_atoms_to_graph
    from torch_geometric.data import Batch

    if getattr(calc, "modal", None):  # multi-fidelity models: per-structure loop
        return _batch_loop(images, calc)
    model = calc.model
    out: list[Atoms] = []
    model.set_is_batch_data(True)
    try:
        for start in range(0, len(images), batch_size):
            chunk = images[start : start + batch_size]
            graphs = [
                AtomGraphData.from_numpy_dict(
                    unlabeled_atoms_to_graph(a, calc.cutoff, with_shift=False)
                )
                for a in chunk
            ]
            result = model(Batch.from_data_list(graphs).to(calc.device))
            energies = result[PRED_TOTAL_ENERGY].detach().cpu().numpy().reshape(-1)
            forces = result[PRED_FORCE].detach().cpu().numpy()
            offsets = np.cumsum([0] + [len(a) for a in chunk])
            for k, atoms in enumerate(chunk):
                out.append(_attach(atoms, energies[k], forces[offsets[k] : offsets[k + 1]]))
    finally:
        model.set_is_batch_data(False)
    return out


def _batch_loop(images: Sequence[Atoms], calc: Calculator) -> list[Atoms]:
    out = []
    for atoms in images:
        work = atoms.copy()
        work.calc = calc
        out.append(_attach(atoms, work.get_potential_energy(), work.get_forces()))
    return out


def calculate_batch(
    images: Sequence[Atoms], calculator: Calculator, *, batch_size: int = 16
) -> list[Atoms]:
    """Single-point energies and forces for many structures.

    CHGNet and SevenNet calculators are evaluated in batches of graphs (one
    network call per batch); any other calculator is called structure by
    structure.

    Parameters
    ----------
    images : sequence of ase.Atoms
        Structures to evaluate; not modified.
    calculator : ase.calculators.calculator.Calculator
        E.g. from :func:`get_calculator`.
    batch_size : int, default 16
        Structures per network call for the batched potentials.

    Returns
    -------
    list of ase.Atoms
        Copies of ``images``, each with a
        :class:`~ase.calculators.singlepoint.SinglePointCalculator` holding
        ``energy`` (eV) and ``forces`` (eV/Å, shape ``(n_atoms, 3)``).
    """
    images = list(images)
    if not all(isinstance(a, Atoms) for a in images):
        raise ValueError("calculate_batch expects a sequence of ase.Atoms")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if not images:
        return []
    module = type(calculator).__module__
    if module.startswith("chgnet."):
        return _batch_chgnet(images, calculator, batch_size)
    if module.startswith("sevenn."):
        return _batch_sevenn(images, calculator, batch_size)
    return _batch_loop(images, calculator)
