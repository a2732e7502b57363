"""Run by tests/test_train.py under torchrun: a 2-process gloo DDP training of the toy model."""

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.core.targets import euclidean_mixture  # noqa: E402
from tests.toy_models import ToyScoreMLP, collate, make_loss  # noqa: E402

from digmat.train import Trainer, TrainConfig  # noqa: E402


def main(out_dir: str) -> None:
    torch.set_num_threads(1)
    mix = euclidean_mixture()
    data, _ = mix.sample(2048, generator=torch.Generator().manual_seed(0), dtype=torch.float32)
    model = ToyScoreMLP(2, width=32)
    trainer = Trainer(model, make_loss(mix.diffusion), list(data), collate, TrainConfig(steps=40, batch_size=64, warmup_steps=5, log_every=10, checkpoint_every=20), out_dir, model_config={"dim": 2}, progress=False)
    trainer.fit()
    flat = torch.cat([p.detach().flatten() for p in model.parameters()])
    Path(out_dir, f"params_rank{trainer.ctx.rank}.txt").write_text(repr(flat.double().sum().item()) + " " + repr(flat.double().abs().sum().item()))


if __name__ == "__main__":
    main(sys.argv[1])
