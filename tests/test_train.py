import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from digmat.checkpoint import load_checkpoint, save_checkpoint
from digmat.core import ODEConfig, log_prob, sample_ode
from digmat.train import Trainer, TrainConfig, batch_indices, deterministic_algorithms, grouped_batch_indices

from .core.targets import euclidean_mixture
from .toy_models import ToyScoreMLP, collate, make_loss, score_fn_of


def small_trainer(out_dir, steps, data, mix, **kw):
    torch.manual_seed(0)
    model = ToyScoreMLP(2, width=32)
    cfg = TrainConfig(steps=steps, batch_size=32, warmup_steps=5, log_every=5, checkpoint_every=kw.pop("checkpoint_every", 10), **kw)
    return Trainer(model, make_loss(mix.diffusion), data, collate, cfg, out_dir, model_config={"dim": 2, "width": 32}, metadata={"test": True}, progress=False)


def test_batch_indices_are_a_pure_function_and_shard_the_batch():
    a = batch_indices(7, size=8, num_items=20, seed=3)
    assert a == batch_indices(7, size=8, num_items=20, seed=3)
    shards = [batch_indices(7, size=8, num_items=20, seed=3, rank=r, world_size=2) for r in range(2)]
    assert sorted(shards[0] + shards[1]) == sorted(a)
    # one epoch covers every item exactly once
    epoch = sum((batch_indices(s, size=5, num_items=20, seed=1) for s in range(4)), [])
    assert sorted(epoch) == list(range(20))


def test_grouped_batches_visit_every_group_equally_and_every_member_once_per_epoch():
    groups = [list(range(0, 6)), list(range(6, 10)), list(range(10, 22))]   # sizes 6, 4, 12
    a = grouped_batch_indices(5, size=8, groups=groups, per_batch=2, seed=3)
    assert a == grouped_batch_indices(5, size=8, groups=groups, per_batch=2, seed=3)
    assert a != grouped_batch_indices(5, size=8, groups=groups, per_batch=2, seed=4)
    # two groups per batch, four items of each
    owner = {i: g for g, members in enumerate(groups) for i in members}
    assert sorted(owner[i] for i in a).count(owner[a[0]]) == 4 and len({owner[i] for i in a}) == 2
    shards = [grouped_batch_indices(5, size=8, groups=groups, per_batch=2, seed=3, rank=r, world_size=2) for r in range(2)]
    assert sorted(shards[0] + shards[1]) == sorted(a)
    # 12 steps x 2 groups = 8 group epochs: each group visited 8 times, 32 items drawn from it
    drawn = sum((grouped_batch_indices(s, size=8, groups=groups, per_batch=2, seed=1) for s in range(12)), [])
    for members in groups:
        mine = [i for i in drawn if i in members]
        assert len(mine) == 32
        # every member used once before any is used twice: counts differ by at most one
        counts = [mine.count(i) for i in members]
        assert max(counts) - min(counts) <= 1, counts
    with pytest.raises(ValueError, match="divide batch_size"):
        TrainConfig(batch_size=32, groups_per_batch=3)


def test_trainer_with_groups_needs_group_ids(tmp_path):
    mix = euclidean_mixture()
    data = list(mix.sample(64, generator=torch.Generator().manual_seed(0), dtype=torch.float32)[0])
    with pytest.raises(ValueError, match="'groups' attribute"):
        small_trainer(tmp_path / "a", 5, data, mix, groups_per_batch=2)

    class Grouped(list):
        groups = [i % 4 for i in range(64)]

    trainer = small_trainer(tmp_path / "b", 4, Grouped(data), mix, groups_per_batch=2, checkpoint_every=2)
    trainer.fit()
    with pytest.raises(ValueError, match="exceeds the dataset's 4 groups"):
        small_trainer(tmp_path / "c", 4, Grouped(data), mix, groups_per_batch=8)


def test_resume_reproduces_the_uninterrupted_run_exactly(tmp_path):
    mix = euclidean_mixture()
    data = list(mix.sample(512, generator=torch.Generator().manual_seed(0), dtype=torch.float32)[0])
    straight = small_trainer(tmp_path / "a", 30, data, mix)
    straight.fit()
    first = small_trainer(tmp_path / "b", 30, data, mix)
    real_step = first.train_step

    def killed_at_23():
        if first.step == 23:
            raise KeyboardInterrupt  # the job dies after the checkpoint at 20 and the log line at 20
        return real_step()

    first.train_step = killed_at_23
    with pytest.raises(KeyboardInterrupt):
        first.fit()
    resumed = small_trainer(tmp_path / "b", 30, data, mix)
    assert resumed.resume() and resumed.step == 20
    resumed.fit()
    for (k, v), (k2, v2) in zip(straight.model.state_dict().items(), resumed.model.state_dict().items()):
        assert k == k2 and torch.equal(v, v2), k
    for k, v in straight.ema.state_dict().items():
        assert torch.equal(v, resumed.ema.state_dict()[k]), k
    log = [json.loads(line) for line in (tmp_path / "b" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [5, 10, 15, 20, 25, 30]


@pytest.mark.parametrize("threads", [1, 2])
def test_identical_runs_and_resume_agree_bit_for_bit_at_a_thread_count(tmp_path, threads):
    """Issue: two identical 2-thread runs drifted apart (the backward of ``table[index]`` adds rows
    from several threads in a varying order); each step now runs with deterministic kernels.
    A subprocess, so the thread count is its own."""
    cmd = [sys.executable, str(Path(__file__).with_name("_determinism_worker.py")), str(tmp_path), str(threads), "1"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False, env={**os.environ, "OMP_NUM_THREADS": str(threads)})
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["threads"] == threads
    assert result["runs_identical"] and result["resume_identical"], result
    assert not result["deterministic_left_on"]


def test_deterministic_algorithms_restores_the_setting():
    assert not torch.are_deterministic_algorithms_enabled()
    with deterministic_algorithms():
        assert torch.are_deterministic_algorithms_enabled() and torch.is_deterministic_algorithms_warn_only_enabled()
    assert not torch.are_deterministic_algorithms_enabled()
    with deterministic_algorithms(False):
        assert not torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)  # a caller's strict setting is kept, not weakened
    try:
        with deterministic_algorithms():
            assert not torch.is_deterministic_algorithms_warn_only_enabled()
        assert torch.are_deterministic_algorithms_enabled()
    finally:
        torch.use_deterministic_algorithms(False)


def test_checkpoint_format_and_errors(tmp_path):
    mix = euclidean_mixture()
    data = list(mix.sample(64, generator=torch.Generator().manual_seed(0), dtype=torch.float32)[0])
    t = small_trainer(tmp_path, 4, data, mix)
    t.fit()
    ckpt = load_checkpoint(tmp_path / "model.pt")
    assert ckpt["format_version"] == 1 and ckpt["config"] == {"dim": 2, "width": 32}
    assert ckpt["training_state"] is None and ckpt["metadata"]["test"] is True
    assert set(ckpt["state_dict"]) == set(ckpt["ema_state_dict"])
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="not a digmat checkpoint"):
        load_checkpoint(tmp_path / "junk.pt")
    with pytest.raises(FileNotFoundError):
        load_checkpoint(tmp_path / "missing.pt")
    # the writer never leaves a partial file when serialisation fails
    with pytest.raises(ValueError, match="plain JSON-able"):
        save_checkpoint(tmp_path / "bad.pt", config={"f": object()}, state_dict={})
    assert not list(tmp_path.glob("bad.pt*")) and not list(tmp_path.glob(".bad.pt*"))
    # changed training settings are refused on resume
    other = Trainer(ToyScoreMLP(2, width=32), make_loss(mix.diffusion), data, collate, TrainConfig(steps=8, batch_size=16), tmp_path, model_config={}, progress=False)
    with pytest.raises(ValueError, match=r"different training settings \(batch_size 32 there, 16 now, .*steps 4 there, 8 now"):
        other.resume()


@pytest.mark.slow  # ~100 s on 2 cores; the default suite keeps the fast trainer tests (python -m pytest -m slow)
def test_training_learns_the_mixture(tmp_path):
    """DSM on samples of the 3-well mixture; the EMA model's samples recover its weights."""
    torch.set_num_threads(2)
    mix = euclidean_mixture()
    data = list(mix.sample(20_000, generator=torch.Generator().manual_seed(0), dtype=torch.float32)[0])
    model = ToyScoreMLP(2, width=128)
    cfg = TrainConfig(steps=1500, batch_size=256, lr=2e-3, warmup_steps=50, ema_decay=0.99, log_every=100, checkpoint_every=1500)
    Trainer(model, make_loss(mix.diffusion), data, collate, cfg, tmp_path, model_config={}, progress=False).fit()
    ema = ToyScoreMLP(2, width=128)
    ema.load_state_dict(load_checkpoint(tmp_path / "model.pt")["ema_state_dict"])
    score = score_fn_of(ema, mix.diffusion)
    with torch.no_grad():
        x = sample_ode(mix.diffusion, score, 4000, ODEConfig("heun", 25), generator=torch.Generator().manual_seed(1), dtype=torch.float64).x
    weights = torch.bincount(mix.component_posterior(x).argmax(1), minlength=3).double() / 4000
    assert float((weights - mix.weights).abs().max()) < 0.05, weights
    pts, _ = mix.sample(32, generator=torch.Generator().manual_seed(2))
    lp = log_prob(mix.diffusion, score, pts, ODEConfig("dopri5", rtol=1e-4, atol=1e-4)).log_prob
    ref = mix.log_prob(pts)
    assert float((lp - ref).abs().median()) < 0.25, (lp - ref)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_ddp_two_gloo_processes(tmp_path):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1", "--master_port", str(free_port()), str(Path(__file__).with_name("_ddp_worker.py")), str(tmp_path)]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=Path(__file__).resolve().parents[1])
    assert out.returncode == 0, out.stderr[-3000:]
    p0 = (tmp_path / "params_rank0.txt").read_text()
    p1 = (tmp_path / "params_rank1.txt").read_text()
    assert p0 == p1  # DDP kept the replicas identical
    ckpt = load_checkpoint(tmp_path / "model.pt")
    assert ckpt["metadata"]["world_size"] == 2 and ckpt["metadata"]["step"] == 40
    log = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [10, 20, 30, 40]
