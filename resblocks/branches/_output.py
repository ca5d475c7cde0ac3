"""Shared init helper for branches that expose their residual output layer via ``output_layer()``."""

from __future__ import annotations

import torch
from torch import nn


@torch.no_grad()
def zero_output_(branch: nn.Module) -> None:
    """Zero the branch's output layer so F(x) = 0 at init (timm ``zero_init_last``; decayed-identity MAE code)."""
    layer = branch.output_layer()
    nn.init.zeros_(layer.weight)
    if layer.bias is not None:
        nn.init.zeros_(layer.bias)
