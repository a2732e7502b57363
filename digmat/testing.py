"""Symmetry checks for any model that maps an ``ase.Atoms`` to per-atom or per-system outputs.

Every ``assert_*`` helper takes ``fn(atoms) -> array`` and a structure, evaluates
``fn`` on the structure and on a transformed copy, and raises ``AssertionError``
(with the largest deviation and the atom where it occurs) when the outputs do not
transform as they should. The input ``atoms`` is never modified; ``fn`` always
receives a copy.

Output kinds (``kind="auto"`` infers them from the shape):

``"vector"``
    ``(N, 3)`` per-atom vectors (scores, forces): rotate with the structure,
    unchanged by translations.
``"atom_scalar"``
    ``(N,)`` or ``(N, k)`` per-atom invariants.
``"system_scalar"``
    Any other shape (e.g. ``()`` or ``(k,)``): invariants of the whole system.

Example
-------
>>> from digmat.testing import assert_equivariant, model_fn
>>> assert_equivariant(model_fn(model), slab)          # doctest: +SKIP
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence

import numpy as np
import torch
from ase import Atoms

from digmat.nn.batch import AtomsBatch

Fn = Callable[[Atoms], np.ndarray]
KINDS = ("auto", "vector", "atom_scalar", "system_scalar")


# --------------------------------------------------------------------------- adapter
def model_fn(
    model: torch.nn.Module,
    *,
    t: float = 0.5,
    dtype: torch.dtype = torch.float64,
    output: str = "vectors",
    conditions: Sequence[float] | None = None,
    device: torch.device | str | None = None,
) -> Fn:
    """Wrap a :class:`digmat.nn.PeriodicGraphormer` as ``fn(atoms) -> np.ndarray``.

    The model is deep-copied, cast to ``dtype`` and put in eval mode; the
    original module is left untouched.

    Parameters
    ----------
    model
        A ``PeriodicGraphormer`` (or any module with the same ``forward`` signature).
    t
        Diffusion time in [0, 1] used for every call.
    dtype
        Floating dtype of the evaluation (float64 for tight tolerances).
    output
        ``"vectors"`` → ``(N, 3)``; ``"scalars"`` → the scalar head's output with
        a trailing axis of size 1 removed (``(N,)`` per atom, ``()`` per system).
    conditions
        The ``num_conditions`` conditioning scalars, if the model uses them.
    device
        Evaluation device (default: CPU).
    """
    if output not in ("vectors", "scalars"):
        raise ValueError(f"output must be 'vectors' or 'scalars', got {output!r}")
    net = copy.deepcopy(model).to(dtype=dtype, device=device).eval()

    def fn(atoms: Atoms) -> np.ndarray:
        batch = AtomsBatch.from_atoms([atoms], dtype=dtype, device=device)
        cond = None
        if conditions is not None:
            cond = torch.as_tensor([list(conditions)], dtype=dtype, device=device)
        with torch.no_grad():
            out = net(batch, t=torch.full((1,), float(t), dtype=dtype, device=device),
                      conditions=cond)
        if output == "vectors":
            return out.vectors.cpu().numpy()
        if out.scalars is None:
            raise ValueError("the model has no scalar head (config.scalar_out == 0)")
        scalars = out.scalars.cpu().numpy()
        if getattr(getattr(net, "config", None), "scalar_pool", "sum") != "none":
            scalars = scalars[0]                       # pooled (1, S) -> (S,)
        if scalars.ndim and scalars.shape[-1] == 1:
            scalars = scalars[..., 0]                  # drop a singleton output axis
        return scalars

    return fn


# --------------------------------------------------------------------------- structures
def symmetry_test_structures(seed: int = 0) -> dict[str, Atoms]:
    """Small structures that exercise every symmetry check (new objects on each call).

    Returns
    -------
    dict[str, ase.Atoms]
        ``"slab"``: Pt(111) 2×2×3 with 8 Å vacuum on each side, pbc (T, T, F),
        OC20 tags (top layer 1, lower layers 0) and an O adsorbate (tag 2) 1.5 Å
        above an fcc hollow, rattled by 0.05 Å.
        ``"bulk_primitive"``: 1-atom fcc Pt primitive cell (a = 3.92 Å); its
        plane spacing is 2.26 Å, so a 6 Å cutoff needs 3 image shells.
        ``"bulk_triclinic"``: 2-atom PtO triclinic cell with ~2.7 Å lattice vectors.
        ``"molecule"``: ethanol, no periodicity.
    """
    from ase.build import add_adsorbate, bulk, fcc111, molecule

    rng = np.random.default_rng(seed)
    slab = fcc111("Pt", size=(2, 2, 3), vacuum=8.0)
    layer = slab.get_tags()                      # ase: 1 = top layer
    slab.set_tags((layer == 1).astype(int))
    add_adsorbate(slab, "O", 1.5, "fcc")
    tags = slab.get_tags()
    tags[-1] = 2
    slab.set_tags(tags)
    slab.positions += rng.normal(scale=0.05, size=slab.positions.shape)

    triclinic = Atoms(
        "PtO",
        scaled_positions=[[0.0, 0.0, 0.0], [0.4, 0.55, 0.45]],
        cell=[[2.6, 0.1, 0.2], [0.9, 2.8, -0.1], [0.3, -0.6, 3.1]],
        pbc=True,
    )
    triclinic.positions += rng.normal(scale=0.05, size=(2, 3))
    ethanol = molecule("CH3CH2OH")
    ethanol.positions += rng.normal(scale=0.05, size=ethanol.positions.shape)
    return {
        "slab": slab,
        "bulk_primitive": bulk("Pt", "fcc", a=3.92),
        "bulk_triclinic": triclinic,
        "molecule": ethanol,
    }


# --------------------------------------------------------------------------- internals
def _evaluate(fn: Fn, atoms: Atoms) -> np.ndarray:
    out = fn(atoms.copy())
    if isinstance(out, torch.Tensor):
        out = out.detach().cpu().numpy()
    return np.asarray(out, dtype=np.float64)


def _kind(out: np.ndarray, natoms: int, kind: str) -> str:
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    if kind == "vector" and out.shape != (natoms, 3):
        raise ValueError(f"kind='vector' needs an output of shape ({natoms}, 3), got {out.shape}")
    if kind == "atom_scalar" and (out.ndim == 0 or out.shape[0] != natoms):
        raise ValueError(f"kind='atom_scalar' needs an output of leading size {natoms}, got {out.shape}")
    if kind != "auto":
        return kind
    if out.shape == (natoms, 3):
        return "vector"
    if out.ndim >= 1 and out.shape[0] == natoms:
        return "atom_scalar"
    return "system_scalar"


def _compare(expected: np.ndarray, actual: np.ndarray, *, what: str, kind: str,
             atol: float, rtol: float) -> None:
    if expected.shape != actual.shape:
        raise AssertionError(f"{what}: output shape changed from {expected.shape} to {actual.shape}")
    dev = np.abs(actual - expected)
    allowed = atol + rtol * np.abs(expected)
    bad = ~(dev <= allowed)              # also catches NaN
    if not bad.any():
        return
    excess = np.where(bad, np.nan_to_num(dev, nan=np.inf) - allowed, -np.inf)
    flat = int(np.argmax(excess))
    index = np.unravel_index(flat, dev.shape)
    where = ""
    if kind in ("vector", "atom_scalar"):
        atom = int(index[0])
        where = f" at atom {atom} (expected {expected[atom]}, got {actual[atom]})"
    else:
        where = f" at output index {index} (expected {expected[index]}, got {actual[index]})"
    raise AssertionError(
        f"{what} violated for {kind} output: max |deviation| = {float(dev[index]):.3e}{where}; "
        f"{int(bad.sum())} of {bad.size} entries exceed atol={atol:g} + rtol={rtol:g}*|expected|")


def _rotation_about(axis: np.ndarray, angle: float) -> np.ndarray:
    axis = np.asarray(axis, dtype=np.float64)
    norm = np.linalg.norm(axis)
    if norm == 0:
        raise ValueError("rotation axis must be non-zero")
    k = axis / norm
    kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + np.sin(angle) * kx + (1 - np.cos(angle)) * kx @ kx


def _random_rotation(rng: np.random.Generator) -> np.ndarray:
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    if np.linalg.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return q


def default_rotation_axis(atoms: Atoms) -> np.ndarray | None:
    """Axis that keeps the periodic structure's symmetry: the surface normal for
    2D-periodic slabs, the periodic direction for 1D systems, ``None`` (any
    rotation) for molecules and bulk."""
    pbc = np.asarray(atoms.pbc, dtype=bool)
    cell = atoms.cell.array
    if pbc.sum() == 2:
        a, b = cell[pbc]
        return np.cross(a, b)
    if pbc.sum() == 1:
        return cell[pbc][0].copy()
    return None


def _periodic_axes(atoms: Atoms, check: str) -> np.ndarray:
    pbc = np.asarray(atoms.pbc, dtype=bool)
    if not pbc.any():
        raise ValueError(f"{check} needs a periodic structure (atoms.pbc is all False)")
    return pbc


# --------------------------------------------------------------------------- checks
def assert_rotation_equivariant(fn: Fn, atoms: Atoms, *, axis: Sequence[float] | None = None,
                                seed: int = 0, atol: float = 1e-5, rtol: float = 1e-5,
                                kind: str = "auto") -> None:
    """Rotate positions and cell; vectors must rotate, scalars must not change.

    Parameters
    ----------
    axis
        Rotation axis (Cartesian). Default: :func:`default_rotation_axis`
        (surface normal for slabs); a uniformly random 3D rotation when that is None.
    seed
        Seed of the random angle / rotation.
    """
    rng = np.random.default_rng(seed)
    if axis is None:
        axis = default_rotation_axis(atoms)
    if axis is None:
        rot = _random_rotation(rng)
    else:
        rot = _rotation_about(np.asarray(axis, dtype=np.float64), rng.uniform(0.3, 2 * np.pi - 0.3))
    rotated = atoms.copy()
    rotated.set_cell(atoms.cell.array @ rot.T, scale_atoms=False)
    rotated.positions = atoms.positions @ rot.T
    out = _evaluate(fn, atoms)
    kind = _kind(out, len(atoms), kind)
    expected = out @ rot.T if kind == "vector" else out
    _compare(expected, _evaluate(fn, rotated), what="rotation equivariance", kind=kind,
             atol=atol, rtol=rtol)


def assert_translation_invariant(fn: Fn, atoms: Atoms, *, seed: int = 0, atol: float = 1e-5,
                                 rtol: float = 1e-5, kind: str = "auto") -> None:
    """Translate all atoms by a random vector of length 3.7 Å; outputs must not change."""
    rng = np.random.default_rng(seed)
    direction = rng.normal(size=3)
    shifted = atoms.copy()
    shifted.positions = atoms.positions + 3.7 * direction / np.linalg.norm(direction)
    out = _evaluate(fn, atoms)
    kind = _kind(out, len(atoms), kind)
    _compare(out, _evaluate(fn, shifted), what="translation invariance", kind=kind,
             atol=atol, rtol=rtol)


def assert_permutation_equivariant(fn: Fn, atoms: Atoms, *, seed: int = 0, atol: float = 1e-5,
                                   rtol: float = 1e-5, kind: str = "auto") -> None:
    """Reorder the atoms by a random non-identity permutation; per-atom outputs must follow."""
    n = len(atoms)
    if n < 2:
        return
    rng = np.random.default_rng(seed)
    perm = rng.permutation(n)
    while np.array_equal(perm, np.arange(n)):
        perm = rng.permutation(n)
    out = _evaluate(fn, atoms)
    kind = _kind(out, n, kind)
    expected = out if kind == "system_scalar" else out[perm]
    _compare(expected, _evaluate(fn, atoms[perm]), what="permutation equivariance", kind=kind,
             atol=atol, rtol=rtol)


def assert_lattice_image_invariant(fn: Fn, atoms: Atoms, *, seed: int = 0, max_shift: int = 2,
                                   atol: float = 1e-5, rtol: float = 1e-5,
                                   kind: str = "auto") -> None:
    """Move every atom by a random integer lattice vector (periodic axes only,
    components in ``[-max_shift, max_shift]``); outputs must not change."""
    pbc = _periodic_axes(atoms, "assert_lattice_image_invariant")
    rng = np.random.default_rng(seed)
    shifts = rng.integers(-max_shift, max_shift + 1, size=(len(atoms), 3)) * pbc
    while not shifts.any():
        shifts = rng.integers(-max_shift, max_shift + 1, size=(len(atoms), 3)) * pbc
    moved = atoms.copy()
    moved.positions = atoms.positions + shifts @ atoms.cell.array
    out = _evaluate(fn, atoms)
    kind = _kind(out, len(atoms), kind)
    _compare(out, _evaluate(fn, moved), what="lattice-image invariance", kind=kind,
             atol=atol, rtol=rtol)


def _default_repeat(pbc: np.ndarray) -> tuple[int, int, int]:
    repeat = [1, 1, 1]
    for k in np.flatnonzero(pbc)[:2]:
        repeat[k] = 2
    return tuple(repeat)


def assert_supercell_consistent(fn: Fn, atoms: Atoms, *, repeat: Sequence[int] | None = None,
                                extensive: bool = False, atol: float = 1e-5, rtol: float = 1e-5,
                                kind: str = "auto") -> None:
    """Evaluate on ``atoms.repeat(repeat)``; every copy of an atom must get the cell's output.

    Parameters
    ----------
    repeat
        Repetitions per lattice vector; must be 1 along non-periodic axes.
        Default: 2 along the first two periodic axes, e.g. ``(2, 2, 1)``.
    extensive
        For system scalars only: expect the supercell value to be the cell value
        times the number of copies (e.g. a total energy). Otherwise equal.
    """
    pbc = _periodic_axes(atoms, "assert_supercell_consistent")
    repeat = _default_repeat(pbc) if repeat is None else tuple(int(r) for r in repeat)
    if len(repeat) != 3 or min(repeat) < 1:
        raise ValueError(f"repeat must be three positive ints, got {repeat}")
    if any(r != 1 and not p for r, p in zip(repeat, pbc)):
        raise ValueError(f"repeat {repeat} is not 1 along a non-periodic axis (pbc={pbc.tolist()})")
    copies = int(np.prod(repeat))
    out = _evaluate(fn, atoms)
    kind = _kind(out, len(atoms), kind)
    big = _evaluate(fn, atoms.repeat(repeat))
    if kind == "system_scalar":
        expected = out * copies if extensive else out
    else:
        # ase.Atoms.repeat appends whole copies of the cell one after the other.
        expected = np.concatenate([out] * copies, axis=0)
    _compare(expected, big, what=f"supercell {repeat} consistency", kind=kind,
             atol=atol, rtol=rtol)


def assert_equivariant(fn: Fn, atoms: Atoms, *, seed: int = 0, atol: float = 1e-5,
                       rtol: float = 1e-5, kind: str = "auto",
                       extensive: bool = False) -> list[str]:
    """Run every applicable check: rotation (about the surface normal for slabs),
    translation, permutation and, for periodic structures, lattice-image
    invariance and 2×2 supercell consistency.

    Returns
    -------
    list[str]
        Names of the checks that ran (all passed).
    """
    common = {"atol": atol, "rtol": rtol, "kind": kind}
    assert_rotation_equivariant(fn, atoms, seed=seed, **common)
    assert_translation_invariant(fn, atoms, seed=seed, **common)
    assert_permutation_equivariant(fn, atoms, seed=seed, **common)
    ran = ["rotation", "translation", "permutation"]
    if np.asarray(atoms.pbc).any():
        assert_lattice_image_invariant(fn, atoms, seed=seed, **common)
        assert_supercell_consistent(fn, atoms, extensive=extensive, **common)
        ran += ["lattice_image", "supercell"]
    return ran
