"""Shared pytest configuration: deterministic, single-threaded-friendly defaults."""

import importlib.util
import os
import sys
from pathlib import Path

import pytest
import torch

if os.environ.get("PYTEST_XDIST_WORKER"):
    # pytest -n 2: each worker owns one core (two intra-op threads per worker would oversubscribe)
    os.environ["OMP_NUM_THREADS"] = "1"
    torch.set_num_threads(1)
else:
    os.environ.setdefault("OMP_NUM_THREADS", "2")


def pytest_xdist_auto_num_workers(config):
    """``-n auto``: one worker per core, at most 4 (each holds its own torch, ~0.5 GB)."""
    return max(1, min(4, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1))


@pytest.fixture(autouse=True)
def _seed_everything():
    torch.manual_seed(0)
    yield


@pytest.fixture(scope="module")
def one_thread():
    """One intra-op torch thread for the module (tiny ops are much slower with several threads on a
    shared CPU); the previous count is restored after it. Modules use it with
    ``pytestmark = pytest.mark.usefixtures("one_thread")``; module fixtures that compute request it."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def load_recipe():
    """``load_recipe("bench_adsorption")``: a module of ``recipes/`` imported by path (recipes are not a package)."""

    def load(name: str):
        spec = importlib.util.spec_from_file_location(name, ROOT / "recipes" / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # dataclasses look their module up while the module runs
        spec.loader.exec_module(module)
        return module

    return load


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory):
    """Path of an untrained one-layer adsorption checkpoint (Pt, O, H) for I/O and message tests."""
    from digmat.checkpoint import save_checkpoint
    from digmat.models import AdsorptionModelConfig, AdsorptionScoreModel
    from tests.toy_models import tiny_adsorption_network

    torch.manual_seed(0)
    config = AdsorptionModelConfig(network=tiny_adsorption_network(), elements=("Pt", "O", "H"))
    path = tmp_path_factory.mktemp("model") / "tiny.pt"
    save_checkpoint(path, config=config.to_dict(), state_dict=AdsorptionScoreModel(config).state_dict(),
                    metadata={"note": "untrained, for I/O tests", "surface_signatures": [[9]]}, kind="adsorption")
    return path


# ---------------------------------------------------------------------------- ligand complexes
# The PoseBusters wheel's real complexes (protein without the ligand + crystal SDF).
@pytest.fixture(scope="session")
def posebusters_case():
    """``posebusters_case("1uou")`` -> (protein PDB path, crystal ligand SDF path)."""
    pytest.importorskip("rdkit", reason="needs the ligand extra (rdkit)")
    pytest.importorskip("openmm", reason="needs the ligand extra (openmm)")
    pytest.importorskip("posebusters", reason="needs the ligand extra (posebusters ships the complexes)")
    from digmat.ligand.checks import posebusters_example

    return posebusters_example


@pytest.fixture(scope="session")
def pocket_1uou(posebusters_case):
    """The 8 Å pocket of 1uou around its crystal ligand, and the ligand (extracted once, ~4 s)."""
    from digmat.ligand.molecule import ligand_atoms, read_ligand
    from digmat.ligand.pocket import extract_pocket

    protein, sdf = posebusters_case("1uou")
    ligand = read_ligand(sdf)
    heavy = ligand_atoms(ligand)
    return extract_pocket(protein, heavy.positions[heavy.numbers > 1], radius=8.0), ligand
