"""Run by tests/test_train.py in a subprocess with a set thread count: are identical runs identical?

A toy model whose loss gathers rows of a parameter table by index (``table[index]``), as the
Graphormer gathers atom features per edge: the backward of that indexing accumulates into shared
rows, from several threads in a varying order unless torch's deterministic kernels are used.
Prints one JSON line: whether two straight runs agree and whether a killed-and-resumed run agrees
with the straight one, bit for bit, plus the largest weight difference of each pair.
"""

import json
import sys
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from digmat.train import TrainConfig, Trainer

STEPS, KILL_AT = 12, 9


class GatherToy(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.table = nn.Parameter(torch.randn(64, 128, generator=torch.Generator().manual_seed(0)))
        self.head = nn.Linear(128, 1)


def gather_loss(model: GatherToy, batch: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    index = batch.repeat(128)  # 4096 rows of 128: large enough for torch to split the work over threads
    noise = torch.randn(index.shape[0], 128, generator=generator)
    return (model.head(torch.tanh(model.table[index] + noise)) ** 2).mean()


def collate(items: list, device: torch.device) -> torch.Tensor:
    return torch.tensor(items, device=device)


def trainer(out_dir: Path, deterministic: bool) -> Trainer:
    torch.manual_seed(0)
    config = TrainConfig(steps=STEPS, batch_size=32, warmup_steps=2, log_every=4, checkpoint_every=4, lr=1e-2)
    return Trainer(GatherToy(), gather_loss, list(range(64)), collate, config, out_dir, model_config={}, progress=False,
                   deterministic=deterministic)


def difference(a: Trainer, b: Trainer) -> float:
    return max(float((x - y).abs().max()) for x, y in zip(a.model.state_dict().values(), b.model.state_dict().values()))


def main(out_dir: str, threads: int, deterministic: bool) -> None:
    torch.set_num_threads(threads)
    root = Path(out_dir)
    first, second = trainer(root / "a", deterministic), trainer(root / "b", deterministic)
    first.fit()
    second.fit()
    killed = trainer(root / "c", deterministic)
    real_step = killed.train_step

    def dies_at_kill_step() -> float:
        if killed.step == KILL_AT:
            raise KeyboardInterrupt
        return real_step()

    killed.train_step = dies_at_kill_step
    try:
        killed.fit()
    except KeyboardInterrupt:
        pass
    resumed = trainer(root / "c", deterministic)
    resumed.fit()
    print(json.dumps({
        "threads": torch.get_num_threads(),
        "runs_identical": difference(first, second) == 0.0,
        "resume_identical": difference(first, resumed) == 0.0,
        "runs_max_diff": difference(first, second),
        "resume_max_diff": difference(first, resumed),
        "deterministic_left_on": torch.are_deterministic_algorithms_enabled(),
    }))


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1")
