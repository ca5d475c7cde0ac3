"""The fast training path, decided once for the device a run trains on (recipes and benchmarks alike).

Each switch is ``auto`` by default; an explicit value always wins. For ``auto``:

* **precision** ``bf16-mixed`` (bf16 autocast; weights, gradients and optimiser state stay fp32) on a CUDA
  GPU with native bf16 (Ampere and later). On a CPU, a run of ``recipes.train`` *measures* it
  (``recipes/engine/calibrate.py``): fp32 eager against bf16 autocast (where the CPU has AVX512-BF16 or
  AMX; elsewhere bf16 is emulated, slower than fp32) on the run's own network and batch shape, cached
  per machine and model shape; bf16 only if it is faster. Without a measurement (``validate``,
  ``RESBLOCKS_CALIBRATE=0``, several processes) the CPU flags decide, as before: ``bf16-mixed`` where
  the CPU has AVX512-BF16/AMX. Attention always runs through ``F.scaled_dot_product_attention``.
* **channels-last** (NHWC) for conv nets, i.e. networks whose weights are mostly 2-D conv kernels
  (ResNets, not a ViT whose one conv is the patch embedding): oneDNN's and cuDNN's conv kernels
  work in NHWC and reorder NCHW tensors around every conv otherwise. On a CPU measured with the
  precision (each precision with and without it), where a measurement is made.
* **fused optimiser** (``fused=True``: one kernel for the whole AdamW/SGD update) where torch has
  fused kernels for the device (CPU and CUDA); on a Zen 5 CPU its update is 3x faster than ``foreach``.
  Not with ``16-mixed`` and gradient clipping: the fused step unscales the gradients itself, so
  Lightning cannot clip them first.
* **torch.compile** on CUDA only: on CPUs it is slower here and costs ~30 s of compiling per run.

Imports torch only (``recipes.modules.optim`` and ``benchmarks`` use it without Lightning).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import nn

from resblocks.errors import ConfigError

if TYPE_CHECKING:
    from .calibrate import Result

AUTO = "auto"
SWITCHES = (AUTO, True, False)
MIXED_BF16 = ("bf16-mixed", "bf16")  # Lightning's name and its alias
# (torch.cpu check, name in the log line): CPUs whose bf16 GEMMs run natively, not emulated
CPU_BF16_FEATURES = (("_is_amx_tile_supported", "AMX"), ("_is_avx512_bf16_supported", "AVX512-BF16"))
DEVICE_NAMES = {"cpu": "CPU", "cuda": "CUDA", "mps": "MPS"}


def kind_of(device: torch.device | str) -> str:
    """The device type of a device or a name (``cuda:1`` -> ``cuda``; an unknown name stays as it is)."""
    return device.type if isinstance(device, torch.device) else str(device).split(":")[0]


def check_switch(key: str, value: object) -> bool | str:
    """``value`` if it is ``auto``, ``true`` or ``false``; else a one-line ``ConfigError`` naming ``key``."""
    if isinstance(value, bool) or value == AUTO:
        return value  # type: ignore[return-value]
    raise ConfigError(f"{key}: {value!r}; valid: auto, true, false")


def device_type(accelerator: str) -> str:
    """The device type (``cpu``, ``cuda``, ``mps``, ...) a ``trainer.accelerator`` value trains on;
    ``auto`` picks as Lightning does (a CUDA GPU, else Apple's MPS, else the CPU)."""
    name = str(accelerator).lower()
    mps = getattr(torch.backends, "mps", None)
    has_mps = mps is not None and mps.is_available()
    if name == "gpu":
        return "mps" if has_mps and not torch.cuda.is_available() else "cuda"
    if name == AUTO:
        return "cuda" if torch.cuda.is_available() else "mps" if has_mps else "cpu"
    return name


def bf16_fast(device: torch.device | str) -> tuple[bool, str]:
    """Whether bf16 autocast runs fast on ``device``, and why (for the log line)."""
    kind = kind_of(device)
    if kind == "cuda":
        if not torch.cuda.is_available():
            return False, "no CUDA device"
        if torch.cuda.is_bf16_supported(including_emulation=False):
            return True, "GPU has bf16"
        return False, "GPU has no native bf16"
    if kind == "cpu":
        found = [name for check, name in CPU_BF16_FEATURES if getattr(torch.cpu, check, lambda: False)()]
        if found and torch.ops.mkldnn._is_mkldnn_bf16_supported():
            return True, f"CPU has {'/'.join(found)}"
        return False, "CPU has no AVX512-BF16/AMX"
    return False, f"bf16 not known to be fast on {kind}"


def bf16_supported(device: torch.device | str) -> bool:
    """Fast bf16 on ``device`` (see :func:`bf16_fast`)."""
    return bf16_fast(device)[0]


def fused_available(device: torch.device | str) -> bool:
    """torch has fused optimiser kernels (AdamW, SGD, ...) for ``device``'s type."""
    from torch.utils._foreach_utils import _get_fused_kernels_supported_devices

    return kind_of(device) in _get_fused_kernels_supported_devices()


def use_fused(setting: bool | str, params: Iterable[torch.Tensor]) -> bool:
    """An optimiser's ``fused=``: ``auto`` -> every parameter is a float tensor on a device with fused kernels."""
    if setting != AUTO:
        return bool(setting)
    params = list(params)
    return bool(params) and all(p.is_floating_point() and fused_available(p.device) for p in params)


def is_conv_net(net: nn.Module) -> bool:
    """Most of ``net``'s weights are 2-D conv kernels (works on the ``meta`` device)."""
    conv = sum(p.numel() for m in net.modules() if isinstance(m, nn.Conv2d) for p in m.parameters(recurse=False))
    return 2 * conv > sum(p.numel() for p in net.parameters())


@dataclass(frozen=True)
class FastPath:
    """Speed switches of a training step. ``FastPath()`` is plain float32 eager.

    * ``bf16``: forward under bf16 autocast (weights, grads and optimiser state stay fp32);
    * ``channels_last``: NHWC memory format for a conv net and its input batches;
    * ``fused``: the optimiser's fused kernel (``fused=True``; AdamW and SGD, CPU and CUDA);
    * ``compile``: ``torch.compile`` the network.
    """

    bf16: bool = False
    channels_last: bool = False
    fused: bool = False
    compile: bool = False

    def label(self) -> str:
        on = [n for n in ("bf16", "channels_last", "fused", "compile") if getattr(self, n)]
        return " + ".join(on) if on else "fp32 eager"


@dataclass(frozen=True)
class Decision:
    """What a run uses: Lightning's ``precision`` string, the switches, and why each was chosen."""

    device: str
    precision: str
    path: FastPath
    optimizer: str
    why: dict[str, str]

    def line(self) -> str:
        """One line for the start of a run, e.g. ``fast path: bf16-mixed (CPU has AVX512-BF16), channels-last, fused SGD, no compile (CPU)``."""
        p, why, opt = self.path, self.why, {"adamw": "AdamW", "sgd": "SGD"}.get(self.optimizer, self.optimizer)
        parts = [f"{self.precision} ({why['precision']})"]
        if p.channels_last:
            parts.append("channels-last" + (f" ({why['channels_last']})" if why["channels_last"] != "conv net" else ""))
        elif why["channels_last"] != "not a conv net":
            parts.append(f"no channels-last ({why['channels_last']})")
        parts.append(f"fused {opt}" if p.fused else f"unfused {opt} ({why['fused']})")
        parts.append(f"{'' if p.compile else 'no '}compile ({why['compile']})")
        return "fast path: " + ", ".join(parts)

    def summary(self) -> dict[str, object]:
        """The decision as plain data (logged with the run's config)."""
        return {"device": self.device, "precision": self.precision, "channels_last": self.path.channels_last,
                "fused": self.path.fused, "compile": self.path.compile}  # fmt: skip


def resolve_precision(setting: str, device: str) -> tuple[str, str]:
    """``(Lightning precision, why)``: ``auto`` -> ``bf16-mixed`` where bf16 is fast, else ``32-true``."""
    if str(setting) != AUTO:
        return str(setting), "trainer.precision"
    fast, why = bf16_fast(device)
    return ("bf16-mixed" if fast else "32-true"), why


def decide(
    device: torch.device | str,
    *,
    conv_net: bool,
    precision: str = AUTO,
    channels_last: bool | str = AUTO,
    fused: bool | str = AUTO,
    compile: bool | str = AUTO,
    optimizer: str = "adamw",
    clip_gradients: bool = False,
    measured: Result | None = None,
) -> Decision:
    """The fast path for training on ``device`` (a device or its type: ``cpu``, ``cuda``, ...).

    ``conv_net``: the network is a conv net (:func:`is_conv_net`) fed image batches.
    ``clip_gradients``: the trainer clips gradients (rules out ``fused`` under ``16-mixed``).
    ``measured``: a calibration (:func:`recipes.engine.calibrate.calibrate`) that decides the ``auto``
    precision and, for a conv net, the ``auto`` channels-last; explicit values still win.
    Raises ``ConfigError`` for a switch that is not ``auto``/``true``/``false``, or an explicit
    ``fused=true`` that cannot work.
    """
    kind = kind_of(device)
    where = DEVICE_NAMES.get(kind, kind)
    channels_last = check_switch("channels_last", channels_last)
    fused = check_switch("optim.fused", fused)
    compile = check_switch("compile", compile)
    prec, why_prec = resolve_precision(precision, kind)
    if measured is not None and str(precision) == AUTO:
        prec, why_prec = ("bf16-mixed" if measured.chosen.bf16 else "32-true"), measured.why()
    scaled_clipping = prec in ("16-mixed", "16") and clip_gradients
    why = {"precision": why_prec}

    if channels_last == AUTO and measured is not None and conv_net:
        channels_last = measured.chosen.channels_last
        why["channels_last"] = "measured" if str(precision) == AUTO else measured.why()
    elif channels_last == AUTO:
        channels_last, why["channels_last"] = conv_net, "conv net" if conv_net else "not a conv net"
    else:
        why["channels_last"] = f"channels_last={str(channels_last).lower()}"

    if fused == AUTO:
        if not fused_available(kind):
            fused, why["fused"] = False, f"no fused kernels on {where}"
        elif scaled_clipping:
            fused, why["fused"] = False, "16-mixed with gradient clipping"
        else:
            fused, why["fused"] = True, where
    else:
        if fused and not fused_available(kind):
            raise ConfigError(
                f"optim.fused: true, but torch has no fused optimiser kernels on {where}; valid: auto, false"
            )
        if fused and scaled_clipping:
            raise ConfigError(
                f"optim.fused: true with trainer.precision={prec} and gradient clipping (the fused step unscales "
                "gradients itself, so Lightning cannot clip them); valid: auto, false, or trainer.gradient_clip_val=null"
            )
        why["fused"] = f"optim.fused={str(fused).lower()}"

    if compile == AUTO:
        compile, why["compile"] = kind == "cuda", where
    else:
        why["compile"] = f"compile={str(compile).lower()}"

    path = FastPath(
        bf16=prec in MIXED_BF16, channels_last=bool(channels_last), fused=bool(fused), compile=bool(compile)
    )
    return Decision(kind, prec, path, optimizer, why)


__all__ = [
    "AUTO", "Decision", "FastPath", "bf16_fast", "bf16_supported", "check_switch", "decide", "device_type",
    "fused_available", "is_conv_net", "kind_of", "resolve_precision", "use_fused",
]  # fmt: skip
