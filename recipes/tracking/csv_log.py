"""The recipes' CSV log: Lightning's ``CSVLogger`` with **one row per step** in ``metrics.csv``.

Lightning writes a row per ``log_metrics`` call, so a step that logs its training metrics and then runs a
validation (or ends an epoch) got two or three rows with the same ``step``, the training row seemingly
repeated. Here a row that continues the previous one (the same step, no metric in both) joins it: in
memory, or, when the previous row is on disk already (Lightning saves after every call), by rewriting the
file with the two merged, atomically; that happens only at such steps (a validation's or an epoch's end).
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter
from lightning.pytorch.loggers.logger import rank_zero_experiment

from ..runs.atomic import atomic_write_bytes


def continues(row: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    """``new`` belongs to ``row``'s line: the same step, and no metric in both (``epoch`` only if the same)."""
    if str(row.get("step")) != str(new.get("step")):
        return False
    shared = {k for k in row.keys() & new.keys() if row[k] not in ("", None)} - {"step"}
    return all(k == "epoch" and str(row[k]) == str(new[k]) for k in shared)


class StepWriter(ExperimentWriter):
    """Lightning's CSV writer, merging the rows of one step (see the module docstring)."""

    def __init__(self, log_dir: str) -> None:
        super().__init__(log_dir)
        self._last: dict[str, Any] | None = None  # the last row on disk

    def log_metrics(self, metrics_dict: dict[str, float], step: int | None = None) -> None:
        super().log_metrics(metrics_dict, step)
        if len(self.metrics) > 1 and continues(self.metrics[-2], self.metrics[-1]):
            self.metrics[-2].update(self.metrics.pop())

    def save(self) -> None:
        if not self.metrics:
            return
        path = self.metrics_file_path
        if self._last is None or not continues(self._last, self.metrics[0]) or not os.path.isfile(path):
            last = dict(self.metrics[-1])
            super().save()
            self._last = last
            return
        with open(path, newline="") as f:
            rows: list[dict[str, Any]] = list(csv.DictReader(f))
        rows[-1].update(self.metrics[0])
        rows += self.metrics[1:]
        self._record_new_keys()
        text = io.StringIO(newline="")
        writer = csv.DictWriter(text, fieldnames=self.metrics_keys)
        writer.writeheader()
        writer.writerows(rows)
        atomic_write_bytes(Path(path), text.getvalue().encode(), "metrics log")
        self.metrics, self._last = [], dict(rows[-1])


class StepCSVLogger(CSVLogger):
    """``CSVLogger`` whose ``metrics.csv`` has one row per logged step."""

    @property
    @rank_zero_experiment
    def experiment(self) -> ExperimentWriter:  # Lightning's, with StepWriter for its writer
        if self._experiment is None:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = StepWriter(log_dir=self.log_dir)
        return self._experiment


__all__ = ["StepCSVLogger", "StepWriter", "continues"]
