"""Run by test_reliability_ddp.py as ``python fault_probe.py RANK STEP OVERRIDES...``: a training run in which
global rank RANK raises an exception once it reaches step STEP. Lightning relaunches this script per extra device."""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
for p in (HERE.parents[1], HERE):
    sys.path.insert(0, str(p))

from lightning.pytorch.callbacks import Callback
from recipe_helpers import compose

from recipes.train import train


class FailOn(Callback):
    def __init__(self, rank: int, step: int) -> None:
        self.rank, self.step = rank, step

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.global_rank == self.rank and trainer.global_step == self.step:
            raise RuntimeError(f"injected failure on rank {self.rank} at step {self.step}")


if __name__ == "__main__":
    train(compose(sys.argv[3:]), callbacks=[FailOn(int(sys.argv[1]), int(sys.argv[2]))])
