"""A logger that never stops training: :class:`FallbackLogger` forwards to W&B until W&B fails, then to CSV.

W&B can fail at start (no network, a login or service error, an init timeout) or mid-run (its
service process dies, an upload error surfaces). Tracking is not worth a lost run: the first
exception from the wrapped logger is reported in one line, and this and every later call goes to
a local ``CSVLogger`` under the run directory instead (the config logged so far is replayed).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from lightning.pytorch.loggers import Logger
from lightning.pytorch.utilities.rank_zero import rank_zero_only

from ..errors import describe


class FallbackLogger(Logger):
    """Forwards every call to ``primary``; after its first error, to ``fallback()`` (built then), saying so once.

    Args:
        primary: the logger to use while it works (``WandbLogger``).
        fallback: builds the replacement (a ``CSVLogger`` in the run directory).
        label: the primary's name in the message.
    """

    def __init__(self, primary: Logger, fallback: Callable[[], Logger], label: str = "W&B") -> None:
        super().__init__()
        self.primary, self._make_fallback, self.label = primary, fallback, label
        self.fallback: Logger | None = None
        self.failure: str | None = None  # "<what>: <error>" once the primary failed
        self._hparams: list[tuple[Any, ...]] = []

    @property
    def active(self) -> Logger:
        return self.primary if self.fallback is None else self.fallback

    def _fail(self, doing: str, error: BaseException) -> None:
        self.failure = f"{doing} ({describe(error)})"
        self.fallback = self._make_fallback()
        if rank_zero_only.rank == 0:
            where = getattr(self.fallback, "log_dir", None) or self.fallback.save_dir
            print(f"{self.label} failed {self.failure}; training goes on, logging to {where}", flush=True)
        for args in self._hparams:
            self.fallback.log_hyperparams(*args)

    def _call(self, doing: str, method: str, *args: Any) -> Any:
        if self.fallback is None:
            try:
                return getattr(self.primary, method)(*args)
            except Exception as e:  # noqa: BLE001  (whatever the tracker raises, the run goes on)
                self._fail(doing, e)
        return getattr(self.active, method)(*args)

    @property
    def experiment(self) -> Any:
        if self.fallback is None:
            try:
                return self.primary.experiment
            except Exception as e:  # noqa: BLE001
                self._fail("to start", e)
        return self.active.experiment

    @property
    def name(self) -> str | None:
        return self.active.name

    @property
    def version(self) -> int | str | None:
        return self.active.version

    @property
    def save_dir(self) -> str | None:
        return self.active.save_dir

    @property
    def log_dir(self) -> str | None:
        return getattr(self.active, "log_dir", None)

    def log_hyperparams(self, params: Any, *args: Any) -> None:
        self._hparams.append((params, *args))
        self._call("to log the config", "log_hyperparams", params, *args)

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        self._call(f"to log step {step}", "log_metrics", metrics, step)

    def log_graph(self, model: Any, input_array: Any = None) -> None:
        self._call("to log the graph", "log_graph", model, input_array)

    def save(self) -> None:
        self._call("to save", "save")

    def finalize(self, status: str) -> None:
        self._call("to finish", "finalize", status)

    def after_save_checkpoint(self, checkpoint_callback: Any) -> None:
        self._call("after a checkpoint", "after_save_checkpoint", checkpoint_callback)
