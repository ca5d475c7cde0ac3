"""Run-wide settings every benchmark group reads: mode, device, dtypes, timing rounds."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TypeVar

import torch

from .timing import CLOCKS

MODES = ("smoke", "quick", "full")
DTYPES = ("float32", "bf16")  # bf16 = bf16 autocast (weights and optimiser stay fp32)

T = TypeVar("T")


@dataclass
class Context:
    """``mode``: ``smoke`` (seconds, for the test), ``quick`` (minutes), ``full`` (the documented table)."""

    mode: str = "quick"
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    dtypes: tuple[str, ...] = DTYPES
    rounds: int = 7
    warmup: int = 2
    min_time: float = 0.05  # seconds per timed sample (calls are repeated to reach it)
    data_paths: dict[str, str] = field(default_factory=dict)  # dataset name -> data.path override
    clock: str = "wall"  # or "cpu": process CPU time (see benchmarks.timing.CLOCKS)
    compile: bool | None = None  # torch.compile in the fast path; None: on GPU only

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode: {self.mode!r}; valid: {', '.join(MODES)}")
        if self.clock not in CLOCKS:
            raise ValueError(f"clock: {self.clock!r}; valid: {', '.join(CLOCKS)}")
        if self.clock == "cpu" and self.device.type != "cpu":
            raise ValueError(f"clock: 'cpu' times host CPU work only; valid with device {self.device.type}: wall")
        for d in self.dtypes:
            if d not in DTYPES:
                raise ValueError(f"dtype: {d!r}; valid: {', '.join(DTYPES)}")

    def pick(self, smoke: T, quick: T, full: T) -> T:
        """The setting for the current mode."""
        return {"smoke": smoke, "quick": quick, "full": full}[self.mode]

    @contextlib.contextmanager
    def autocast(self, dtype: str) -> Iterator[None]:
        """``bf16``: autocast to bfloat16 on the run's device; ``float32``: nothing."""
        if dtype == "bf16":
            with torch.autocast(self.device.type, dtype=torch.bfloat16):
                yield
        else:
            yield

    def timing(self) -> dict[str, object]:
        """Keyword arguments for :func:`benchmarks.timing.interleaved`."""
        return {
            "rounds": self.rounds, "warmup": self.warmup, "min_time": self.min_time, "device": self.device,
            "clock": self.clock,
        }  # fmt: skip

    def now(self) -> float:
        """The run's clock, for benchmarks that time chunks themselves."""
        return CLOCKS[self.clock]()


def dtype_label(dtype: str) -> str:
    return "bf16 autocast" if dtype == "bf16" else "float32"


__all__ = ["Context", "DTYPES", "MODES", "dtype_label"]
