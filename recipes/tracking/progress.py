"""Progress for logs that are files: one line now and then instead of the progress bar's every refresh.

Lightning's bar rewrites itself a dozen times a second; in a terminal that is one line, but with stdout
going to a file (SLURM's ``slurm-*.out``, ``> log``) every refresh stays, megabytes for a default run.
When stdout is not a terminal the recipes use :class:`LineProgress` instead (``progress_callbacks``):

    step 500/2000 (25%)  loss 2.113  11.2 it/s  elapsed 0m45s  eta 2m14s
    val @ step 500: loss 2.151  bpc 3.103

one line every ``every`` seconds (30) and at the end of each validation, from rank 0 only. Reading the
loss is the only device synchronisation, once per line (the bar's every refresh reads it too).
"""

from __future__ import annotations

import math
import sys
import time
from typing import Any

from lightning.pytorch.callbacks.progress.progress_bar import ProgressBar


def _clock(seconds: float) -> str:
    minutes, s = divmod(round(seconds), 60)
    hours, m = divmod(minutes, 60)
    return f"{hours}h{m:02d}m{s:02d}s" if hours else f"{m}m{s:02d}s"


def _value(v: Any) -> str:
    v = float(v)
    return f"{v:.4g}" if math.isfinite(v) and abs(v) < 1e5 else f"{v:.3e}"


class LineProgress(ProgressBar):
    """Periodic one-line progress (step, loss, speed, elapsed, ETA) and a line per validation.

    A :class:`~lightning.pytorch.callbacks.ProgressBar`, so Lightning uses it in place of its own bar.
    """

    def __init__(self, every: float = 30.0, stream: Any = None) -> None:
        super().__init__()
        self.every, self.stream = every, stream
        self._enabled = True
        self._start: float | None = None
        self._start_step = 0
        self._last = 0.0

    def disable(self) -> None:
        self._enabled = False

    def enable(self) -> None:
        self._enabled = True

    def _print(self, trainer: Any, line: str) -> None:
        if self._enabled and trainer.is_global_zero:
            print(line, file=self.stream or sys.stdout, flush=True)

    def on_train_start(self, trainer: Any, pl_module: Any) -> None:
        self._start, self._start_step = time.perf_counter(), trainer.global_step
        self._last = self._start

    def on_train_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        now = time.perf_counter()
        if self._start is None or now - self._last < self.every:
            return
        self._last = now
        self._print(trainer, self.progress_line(trainer, now))

    def progress_line(self, trainer: Any, now: float | None = None) -> str:
        now = time.perf_counter() if now is None else now
        step, total = trainer.global_step, trainer.max_steps
        elapsed = now - (self._start or now)
        rate = (step - self._start_step) / elapsed if elapsed > 0 else 0.0
        if total is None or total < 0:
            total = trainer.estimated_stepping_batches
        parts = [f"step {step}"]
        if total and math.isfinite(total):
            parts = [f"step {step}/{int(total)} ({100 * step / total:.0f}%)"]
        loss = trainer.callback_metrics.get("train/loss")
        if loss is not None:
            parts.append(f"loss {_value(loss)}")
        parts += [f"{rate:.3g} it/s", f"elapsed {_clock(elapsed)}"]
        if rate > 0 and total and math.isfinite(total) and total > step:
            parts.append(f"eta {_clock((total - step) / rate)}")
        return "  ".join(parts)

    def on_validation_end(self, trainer: Any, pl_module: Any) -> None:
        if trainer.sanity_checking:
            return
        shown = {k.split("/", 1)[1]: v for k, v in sorted(trainer.callback_metrics.items()) if k.startswith("val/")}
        if shown:
            row = "  ".join(f"{k} {_value(v)}" for k, v in shown.items())
            self._print(trainer, f"val @ step {trainer.global_step}: {row}")

    def on_train_end(self, trainer: Any, pl_module: Any) -> None:
        if self._start is not None:
            self._print(trainer, self.progress_line(trainer))


def progress_callbacks(enable_progress_bar: bool, stream: Any = None) -> list[Any]:
    """``[LineProgress()]`` when the bar is on and ``stream`` (default: stdout) is not a terminal, else nothing
    (Lightning's own bar then)."""
    isatty = getattr(stream or sys.stdout, "isatty", None)
    if not enable_progress_bar or (callable(isatty) and isatty()):
        return []
    return [LineProgress(stream=stream)]


__all__ = ["LineProgress", "progress_callbacks"]
