"""Interleaved timing: warm-up, then rounds that time every variant once, and per-round ratios.

A shared machine drifts (other jobs, frequency, caches): a reference timed minutes before its
candidate can be off by tens of percent. Here every round times all variants back to back, in an
order that alternates between rounds (A B, B A, A B, ...), and a ratio is taken *within* each round;
the report gives the median ratio and its inter-quartile range over the rounds.
"""

from __future__ import annotations

import gc
import math
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import torch


# "wall": elapsed time. "cpu": CPU time of this process (time.process_time), which leaves out the time
# other processes hold the cores: far steadier on a shared machine, and equal to the wall time of the
# work when torch runs one thread. Meaningless for GPU work (asynchronous) or with several threads
# (spinning threads count).
CLOCKS: dict[str, Callable[[], float]] = {"wall": time.perf_counter, "cpu": time.process_time}


def sync(device: torch.device | str) -> None:
    """Wait for queued device work, so a wall-clock interval covers it (no-op on the CPU)."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def quartiles(values: Sequence[float]) -> tuple[float, float, float]:
    """``(q1, median, q3)``; with fewer than two values all three are the value."""
    if len(values) < 2:
        v = float(values[0])
        return v, v, v
    q1, q2, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return q1, q2, q3


@dataclass
class Timings:
    """Seconds per call of each variant, one entry per round (``seconds[name][r]``)."""

    seconds: dict[str, list[float]]
    inner: dict[str, int]  # calls per timed sample

    def median(self, name: str) -> float:
        return statistics.median(self.seconds[name])

    def ratios(self, name: str, reference: str) -> list[float]:
        return [c / r for c, r in zip(self.seconds[name], self.seconds[reference])]

    def ratio(self, name: str, reference: str) -> tuple[float, tuple[float, float]]:
        """Median per-round ratio ``name / reference`` and its inter-quartile range."""
        q1, med, q3 = quartiles(self.ratios(name, reference))
        return med, (q1, q3)

    @property
    def rounds(self) -> int:
        return len(next(iter(self.seconds.values())))


def _timed(fn: Callable[[], object], inner: int, device: torch.device, clock: Callable[[], float]) -> float:
    sync(device)
    start = clock()
    for _ in range(inner):
        fn()
    sync(device)
    return (clock() - start) / inner


def interleaved(
    fns: Mapping[str, Callable[[], object]],
    *,
    rounds: int,
    warmup: int = 2,
    min_time: float = 0.05,
    device: torch.device | str = "cpu",
    clock: str = "wall",
) -> Timings:
    """Time each callable ``rounds`` times, interleaved; each sample repeats a call until it lasts ``min_time`` s.

    ``warmup`` untimed calls each come first (allocator, autotuning, lazy init, compilation). The
    Python garbage collector is paused while timing so a collection does not land in one sample.
    """
    device, now = torch.device(device), CLOCKS[clock]
    names = list(fns)
    for name in names:
        for _ in range(warmup):
            fns[name]()
    # One probe call per variant sets how many calls make a sample of at least min_time.
    inner = {n: max(1, math.ceil(min_time / max(_timed(fns[n], 1, device, now), 1e-9))) for n in names}
    seconds: dict[str, list[float]] = {n: [] for n in names}
    gc_was_enabled = gc.isenabled()
    try:
        for r in range(rounds):
            gc.collect()
            gc.disable()
            for name in names if r % 2 == 0 else reversed(names):
                seconds[name].append(_timed(fns[name], inner[name], device, now))
            if gc_was_enabled:
                gc.enable()
    finally:
        if gc_was_enabled:
            gc.enable()
    return Timings(seconds, inner)


def fmt_time(seconds: float) -> str:
    """``12.3 ms`` / ``1.23 s`` / ``45.6 us``."""
    if seconds >= 1:
        return f"{seconds:.2f} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.1f} ms"
    return f"{seconds * 1e6:.1f} us"


__all__ = ["CLOCKS", "Timings", "fmt_time", "interleaved", "quartiles", "sync"]
