"""Tiny models for the diagnostics tests: two Transformer blocks on ``[B, T, D]`` tokens, two conv blocks
(the second changing the shape), both passing the per-forward ``hiddens`` record as the library's models do."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from resblocks import build_block


class TokenBlocks(nn.Module):
    """``depth`` Transformer blocks of width ``dim`` (2 residual sub-layers each) applied to a token tensor."""

    def __init__(self, depth: int = 2, dim: int = 16, heads: int = 2, **block: Any) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(
            build_block("transformer", dim, heads, index=i, total=depth, **block) for i in range(depth)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        hiddens: dict[int, torch.Tensor] = {}
        for b in self.blocks:
            x = b(x, hiddens=hiddens)
        return x


class ImageBlocks(nn.Module):
    """Two conv blocks: 4 -> 4 channels, then 4 -> 8 at stride 2 (through ``downsample``)."""

    def __init__(self, block: str = "basic", downsample: str = "pad", **options: Any) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(
            [
                build_block(block, 4, 4, index=0, total=2, **options),
                build_block(block, 4, 8, stride=2, downsample=downsample, index=1, total=2, **options),
            ]
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        hiddens: dict[int, torch.Tensor] = {}
        for b in self.blocks:
            x = b(x, hiddens=hiddens)
        return x


@torch.no_grad()
def perturb_(model: nn.Module, scale: float = 0.3, seed: int = 0) -> nn.Module:
    """Move every rule and modifier parameter off its init (where LAuReL is the identity, gates are equal)."""
    g = torch.Generator().manual_seed(seed)
    for name, p in model.named_parameters():
        if ".shortcut." in name or ".branch_out." in name:
            p.add_(scale * torch.randn(p.shape, generator=g))
    return model
