"""Batched augmentation of uint8 image batches on whatever device they are on.

No per-item PIL work: a whole ``[B,C,H,W]`` uint8 batch is cropped and flipped with a few
tensor ops (per-sample offsets by advanced indexing), then converted to normalised floats.
Everything random draws from an explicit ``torch.Generator`` so results are reproducible.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import torch
import torch.nn.functional as F

# Per-dataset channel statistics of the train split (pixels / 255).
STATS: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    "fmnist": ((0.2860,), (0.3530,)),
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "cifar100": ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
    "imagenet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
}


def _check(x: torch.Tensor) -> None:
    if x.dim() != 4 or x.dtype != torch.uint8:
        raise ValueError(f"augment: expected a uint8 batch [B,C,H,W], got {x.dtype} {tuple(x.shape)}")


def random_crop(x: torch.Tensor, padding: int = 4, generator: torch.Generator | None = None) -> torch.Tensor:
    """Zero-pad by ``padding`` then crop back to ``H x W`` at a random offset per sample."""
    _check(x)
    if padding <= 0:
        return x
    b, c, h, w = x.shape
    padded = F.pad(x, (padding, padding, padding, padding))
    offsets = torch.randint(0, 2 * padding + 1, (2, b), generator=generator, device=x.device)
    rows = (offsets[0, :, None] + torch.arange(h, device=x.device))[:, None, :, None]  # [B,1,H,1]
    cols = (offsets[1, :, None] + torch.arange(w, device=x.device))[:, None, None, :]  # [B,1,1,W]
    batch = torch.arange(b, device=x.device)[:, None, None, None]
    chans = torch.arange(c, device=x.device)[None, :, None, None]
    return padded[batch, chans, rows, cols]


def random_hflip(x: torch.Tensor, p: float = 0.5, generator: torch.Generator | None = None) -> torch.Tensor:
    """Mirror each sample left-right with probability ``p``."""
    _check(x)
    flip = torch.rand(x.shape[0], generator=generator, device=x.device) < p
    return torch.where(flip[:, None, None, None], x.flip(-1), x)


@functools.lru_cache(maxsize=64)
def _channel_stat(values: tuple[float, ...], device: torch.device) -> torch.Tensor:
    # Cached per device: building it every batch would be a blocking host->device copy.
    return torch.tensor(values, device=device, dtype=torch.float32).view(1, -1, 1, 1)


def normalize(x: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """uint8 ``[B,C,H,W]`` -> float32 ``(x / 255 - mean) / std`` per channel."""
    _check(x)
    if len(mean) != x.shape[1] or len(std) != x.shape[1]:
        raise ValueError(f"normalize: {x.shape[1]} channels but {len(mean)} means and {len(std)} stds")
    m, s = _channel_stat(tuple(mean), x.device), _channel_stat(tuple(std), x.device)
    return (x.float().div_(255) - m).div_(s)


def augment(
    x: torch.Tensor, padding: int = 4, flip: bool = True, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Random pad-crop then random horizontal flip of a uint8 batch (still uint8)."""
    x = random_crop(x, padding, generator)
    return random_hflip(x, 0.5, generator) if flip else x
