"""Run by test_ddp.py as ``python ddp_probe.py OUT_DIR OVERRIDES...``: a DDP run that records, per rank,
a hash of every training sample it saw and of its final weights. Lightning relaunches this script
once per extra device (one subprocess per test keeps pytest itself out of the relaunch)."""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
for p in (HERE.parents[1], HERE):
    sys.path.insert(0, str(p))

from lightning.pytorch.callbacks import Callback
from recipe_helpers import compose

from recipes.train import train


class Probe(Callback):
    def __init__(self, out: Path) -> None:
        self.out, self.samples = out, []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.samples += [hashlib.sha1(row.numpy().tobytes()).hexdigest() for row in batch[0].detach().cpu()]

    def on_train_end(self, trainer, pl_module):
        # Parameters (BatchNorm running stats are per rank unless sync_batchnorm).
        weights = hashlib.sha1(b"".join(p.detach().cpu().numpy().tobytes() for p in pl_module.parameters()))
        record = {"samples": self.samples, "weights": weights.hexdigest(), "world": trainer.world_size}
        (self.out / f"rank{trainer.global_rank}.json").write_text(json.dumps(record))


if __name__ == "__main__":
    out = Path(sys.argv[1])
    train(compose(sys.argv[2:]), callbacks=[Probe(out)])
