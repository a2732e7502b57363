import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from ase.build import fcc111

from digmat.adsorption import convert_ase_tags, get_adsorbate
from digmat.checkpoint import load_checkpoint
from digmat.cli.main import main
from digmat.data import write_lmdb
from digmat.tasks.datasets import AdsorptionDataset
from digmat.pretrained import load_model
from digmat.systems import AdsorbateSystem


def synthetic_configs(n_per_system=12, seed=0):
    """O and OH on a small Pt(111) slab at two temperatures, as slab+adsorbate Atoms records."""
    slab = convert_ase_tags(fcc111("Pt", (2, 2, 3), vacuum=8.0))
    g = torch.Generator().manual_seed(seed)
    configs = []
    for sid, name in enumerate(["O", "OH"]):
        system = AdsorbateSystem(slab, get_adsorbate(name))
        x = system.space.wrap(0.3 * system.space.sample_prior(n_per_system, generator=g, dtype=torch.float64))
        for k, atoms in enumerate(system.to_atoms(x)):
            atoms.info.update(sid=sid, temperature=300.0 if k % 2 else 900.0, binding_indices=[0])
            configs.append(atoms)
    return configs


def test_dataset_groups_systems_and_reproduces_states(tmp_path):
    configs = synthetic_configs()
    write_lmdb(tmp_path / "d.lmdb", configs)
    ds = AdsorptionDataset(tmp_path / "d.lmdb")
    assert len(ds) == 24 and len(ds.systems) == 2 and ds.elements == ("H", "O", "Pt")
    assert ds.temperature_range == (300.0, 900.0)
    owner, x, temp = ds[13]
    system = ds.systems[owner]
    again = system.to_state(configs[13], dtype=torch.float32)[0]
    torch.testing.assert_close(system.space.difference(again[None], x[None])[0], torch.zeros_like(x), atol=1e-5, rtol=0)
    groups = ds.collate([ds[i] for i in (0, 13, 1, 20)])
    assert [g[1].shape[0] for g in groups] == [2, 2]
    assert ds.groups == [ds[i][0] for i in range(len(ds))] and sorted(set(ds.groups)) == [0, 1]


def test_train_cli_systems_per_batch(tmp_path, capsys):
    """--systems-per-batch 1: every batch holds one system's samples; a K that does not divide the
    batch, or exceeds the systems, is a one-line error."""
    write_lmdb(tmp_path / "d.lmdb", synthetic_configs())
    base = ["train", "adsorption", "--data", str(tmp_path / "d.lmdb"), "--steps", "2", "--batch-size", "8", "--layers", "1",
            "--embed-dim", "16", "--heads", "2", "--cutoff", "4.0", "--json", "--device", "cpu"]
    assert main([*base, "--out", str(tmp_path / "a"), "--systems-per-batch", "1"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["step"] == 2
    assert main([*base, "--out", str(tmp_path / "b"), "--systems-per-batch", "3"]) == 2
    assert "divide batch_size 8" in capsys.readouterr().err
    assert main([*base, "--out", str(tmp_path / "c"), "--systems-per-batch", "4"]) == 2
    assert "exceeds the dataset's 2 groups" in capsys.readouterr().err


def test_pools_hold_each_systems_records_at_one_temperature(tmp_path):
    configs = synthetic_configs()
    write_lmdb(tmp_path / "d.lmdb", configs)
    ds = AdsorptionDataset(tmp_path / "d.lmdb")
    for k, system in enumerate(ds.systems):
        for temp in (300.0, 900.0):
            expected = [x for owner, x, t in (ds[i] for i in range(len(ds))) if owner == k and t == temp]
            pool = ds.pool(system, temp)
            assert pool.shape == (len(expected), *expected[0].shape) and len(expected) == 6
            torch.testing.assert_close(pool, torch.stack(expected))
    with pytest.raises(ValueError, match="no record of system"):
        ds.pool(ds.systems[0], 600.0)
    for config in configs:  # collate hands the loss float32 temperatures: 298.15 K must still find its records
        config.info["temperature"] = 298.15 if config.info["temperature"] == 300.0 else config.info["temperature"]
    warm = AdsorptionDataset(configs)
    (_, _, temps), _ = warm.collate([warm[i] for i in range(len(warm))])
    assert warm.pool(warm.systems[0], float(temps[temps < 299][0])).shape[0] == 6
    with pytest.raises(ValueError, match="not one of this dataset's systems"):
        ds.pool(AdsorptionDataset(configs).systems[0], 300.0)


def test_train_cli_pooled_target(tmp_path, capsys):
    """--target pooled trains and is recorded; with --energy it is a one-line error."""
    write_lmdb(tmp_path / "d.lmdb", synthetic_configs())
    args = ["train", "adsorption", "--data", str(tmp_path / "d.lmdb"), "--steps", "2", "--batch-size", "8", "--layers", "1",
            "--embed-dim", "16", "--heads", "2", "--cutoff", "4.0", "--json", "--device", "cpu", "--target", "pooled",
            "--systems-per-batch", "2", "--out", str(tmp_path / "a")]
    assert main(args) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["step"] == 2
    assert load_checkpoint(tmp_path / "a" / "model.pt")["metadata"]["target"] == "pooled"
    assert main(["train", "adsorption", "--energy", "emt", "Pt111", "O", "--out", str(tmp_path / "b"), "--target", "pooled"]) == 2
    err = capsys.readouterr().err
    assert "--target pooled needs --data" in err and "Traceback" not in err


def test_train_cli_threads(tmp_path, capsys):
    """--threads N sets torch's CPU threads before training; 0 is a one-line error."""
    write_lmdb(tmp_path / "d.lmdb", synthetic_configs())
    base = ["train", "adsorption", "--data", str(tmp_path / "d.lmdb"), "--steps", "1", "--batch-size", "4", "--layers", "1",
            "--embed-dim", "16", "--heads", "2", "--cutoff", "4.0", "--json", "--device", "cpu"]
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        assert main([*base, "--out", str(tmp_path / "a"), "--threads", "1"]) == 0
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
    assert main([*base, "--out", str(tmp_path / "b"), "--threads", "0"]) == 2
    err = capsys.readouterr().err
    assert "--threads" in err and "Traceback" not in err


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_train_cli_resume_and_ddp(tmp_path, capsys):
    write_lmdb(tmp_path / "d.lmdb", synthetic_configs())
    args = ["train", "adsorption", "--data", str(tmp_path / "d.lmdb"), "--out", str(tmp_path / "run"), "--steps", "6", "--batch-size", "8",
            "--layers", "1", "--embed-dim", "16", "--heads", "2", "--cutoff", "4.0", "--checkpoint-every", "3", "--log-every", "3", "--json", "--device", "cpu"]
    assert main(args) == 0
    last = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert last["step"] == 6
    model = load_model(tmp_path / "run" / "model.pt")
    assert model.config.elements == ("H", "O", "Pt") and model.metadata["systems"] == 2
    # rerunning the finished command resumes at step 6 and does nothing more
    assert main(args) == 0
    assert len((tmp_path / "run" / "log.jsonl").read_text().splitlines()) == 2
    # two gloo processes under torchrun
    ddp = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1", "--master_port", str(free_port()), "-m", "digmat.cli.main"]
    ddp += [a if a != str(tmp_path / "run") else str(tmp_path / "ddp") for a in args]
    out = subprocess.run(ddp, capture_output=True, text=True, timeout=300, cwd=Path(__file__).resolve().parents[2], env={"OMP_NUM_THREADS": "1", **__import__("os").environ})
    assert out.returncode == 0, out.stderr[-3000:]
    assert load_model(tmp_path / "ddp" / "model.pt").metadata["world_size"] == 2


def test_train_cli_warm_start(tmp_path, capsys):
    """--init copies a trained model's weights before the first step; another network is refused."""
    write_lmdb(tmp_path / "d.lmdb", synthetic_configs())
    base = ["train", "adsorption", "--data", str(tmp_path / "d.lmdb"), "--batch-size", "8", "--layers", "1",
            "--embed-dim", "16", "--heads", "2", "--cutoff", "4.0", "--json", "--device", "cpu"]
    assert main([*base, "--out", str(tmp_path / "a"), "--steps", "4"]) == 0
    source = load_model(tmp_path / "a" / "model.pt")
    # lr 1e-12: the warm-started weights are the source's up to round-off after two steps
    assert main([*base, "--out", str(tmp_path / "b"), "--steps", "2", "--lr", "1e-12", "--init", str(tmp_path / "a" / "model.pt")]) == 0
    warm = load_model(tmp_path / "b" / "model.pt")
    for name, value in source.state_dict().items():
        torch.testing.assert_close(warm.state_dict()[name], value, atol=1e-6, rtol=0)
    assert warm.metadata["init"] == str(tmp_path / "a" / "model.pt")
    capsys.readouterr()
    assert main([*base[:-7], "--embed-dim", "8", "--heads", "2", "--cutoff", "4.0", "--json", "--device", "cpu",
              "--out", str(tmp_path / "c"), "--steps", "2", "--init", str(tmp_path / "a" / "model.pt")]) == 2
    assert "embed_dim 16 there, 8 here" in capsys.readouterr().err


def test_dataset_errors_name_the_lmdb_file(tmp_path):
    """A record the trainer cannot use is named with its file, not only its index."""
    configs = synthetic_configs(n_per_system=2)
    configs[3].set_tags(0)
    write_lmdb(tmp_path / "d.lmdb", configs)
    with pytest.raises(ValueError, match=r"record 3 of .*d\.lmdb.* has no adsorbate atoms"):
        AdsorptionDataset(tmp_path / "d.lmdb")
