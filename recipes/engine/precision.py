"""``lightning.Trainer``'s precision for a run: ``precision=...``, or for bf16-mixed a plugin that lets a fused optimiser clip.

Lightning's ``MixedPrecision.clip_gradients`` refuses any optimiser that "handles unscaling" (a fused
AdamW/SGD), because under ``16-mixed`` the gradients are still multiplied by the loss scale when
clipping would run. ``bf16-mixed`` has no loss scale, so its gradients are the true ones and clipping
them is right (Lightning issue #21435, fixed upstream in PR #21436, not in Lightning 2.6).
"""

from __future__ import annotations

from typing import Any

from lightning.pytorch.plugins.precision import MixedPrecision, Precision
from lightning.pytorch.utilities import GradClipAlgorithmType
from torch.optim import Optimizer

from .fast_path import MIXED_BF16

# Strategies that take a plain precision plugin (FSDP and DeepSpeed bring their own).
PLAIN_STRATEGIES = ("auto", "ddp", "ddp_spawn", "ddp_find_unused_parameters_true", "single_device")


class BF16MixedPrecision(MixedPrecision):
    """Lightning's ``bf16-mixed`` (autocast to bfloat16), with gradient clipping allowed for fused optimisers."""

    def __init__(self, device: str) -> None:
        super().__init__("bf16-mixed", device)

    def clip_gradients(
        self,
        optimizer: Optimizer,
        clip_val: float = 0.0,
        gradient_clip_algorithm: GradClipAlgorithmType = GradClipAlgorithmType.NORM,
    ) -> None:
        # No loss scale, so no unscaling to wait for: clip as in full precision.
        Precision.clip_gradients(self, optimizer, clip_val, gradient_clip_algorithm)


def trainer_precision(precision: str, device: str, strategy: Any = "auto") -> dict[str, Any]:
    """Keyword arguments for ``lightning.Trainer``: ``{"plugins": [BF16MixedPrecision]}`` for bf16-mixed under
    a plain strategy, else ``{"precision": precision}``."""
    if precision in MIXED_BF16 and isinstance(strategy, str) and strategy in PLAIN_STRATEGIES:
        return {"plugins": [BF16MixedPrecision(device)]}
    return {"precision": precision}


__all__ = ["PLAIN_STRATEGIES", "BF16MixedPrecision", "trainer_precision"]
