"""Callbacks of the training recipes: learning rate and throughput, logged every ``log_every_n_steps``."""

from __future__ import annotations

import time
from typing import Any

from lightning.pytorch.callbacks import Callback


class TrainingMonitor(Callback):
    """Logs ``lr`` (first param group), ``perf/samples_per_sec`` and, for token models, ``perf/tokens_per_sec``.

    Rates are global (all ranks) and measured by wall clock between two logging steps, so they
    include data loading and need no device synchronisation of their own.
    """

    def __init__(self) -> None:
        self._t0: float | None = None
        self._samples = 0
        self._tokens = 0
        self._last_step = -1
        self.last_val_step = -1  # global step of the last (non-sanity) validation

    def on_train_start(self, trainer: Any, pl_module: Any) -> None:
        self._t0, self._samples, self._tokens = time.perf_counter(), 0, 0

    def on_train_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        self._samples += pl_module.batch_samples(batch)
        self._tokens += pl_module.batch_tokens(batch) or 0
        step = trainer.global_step
        # With gradient accumulation several batches share a global step: log once per step.
        if step % trainer.log_every_n_steps != 0 or step == self._last_step or self._t0 is None:
            return
        self._last_step = step
        now = time.perf_counter()
        elapsed, world = max(now - self._t0, 1e-9), trainer.world_size
        metrics = {
            "lr": trainer.optimizers[0].param_groups[0]["lr"],
            "perf/samples_per_sec": self._samples * world / elapsed,
        }
        if self._tokens:
            metrics["perf/tokens_per_sec"] = self._tokens * world / elapsed
        pl_module.log_dict(metrics, on_step=True, on_epoch=False, rank_zero_only=True)
        self._t0, self._samples, self._tokens = now, 0, 0

    def on_validation_end(self, trainer: Any, pl_module: Any) -> None:
        if not trainer.sanity_checking:
            self.last_val_step = trainer.global_step
