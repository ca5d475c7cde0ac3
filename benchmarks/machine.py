"""What a measurement ran on: CPU model, threads, GPU, torch version, load average, bf16 support."""

from __future__ import annotations

import datetime as dt
import os
import platform
from pathlib import Path
from typing import Any

import torch

from recipes.engine.fast_path import bf16_supported  # the recipes' rule, recorded with every report


def cpu_model() -> str:
    """The CPU's marketing name (``/proc/cpuinfo``), else ``platform.processor()``."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def load_average() -> tuple[float, float, float] | None:
    """1/5/15-minute load averages (``uptime``), or None where the OS has none."""
    try:
        return tuple(round(x, 2) for x in os.getloadavg())  # type: ignore[return-value]
    except OSError:
        return None


def gpu_name(device: torch.device | str) -> str | None:
    device = torch.device(device)
    if device.type == "cuda" and torch.cuda.is_available():
        return torch.cuda.get_device_name(device)
    return None


def describe(device: torch.device | str) -> dict[str, Any]:
    """The record every report carries (``meta.machine``)."""
    device = torch.device(device)
    return {
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "gpu": gpu_name(device),
        "device": str(device),
        "bf16_fast": bf16_supported(device),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }


__all__ = ["bf16_supported", "cpu_model", "describe", "gpu_name", "load_average"]
