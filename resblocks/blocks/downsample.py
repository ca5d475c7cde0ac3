"""Shape-changing shortcuts: what the stream x goes through when a block changes resolution or width.

He et al. 2016 (arXiv 1512.03385), Sec. 3.3 / 4.1 give two choices, used *only* where the shape changes:

* ``pad`` (option A): subsample by ``stride`` and zero-pad the new channels; no parameters. The
  paper's CIFAR ResNets use it everywhere, so they have exactly the parameters of the plain net.
* ``conv`` (option B): a 1x1 conv with the stride, then BN (torchvision's ``downsample``). Pre-activation
  blocks drop the BN: the next block's pre-activation normalises the sum (arXiv 1603.05027 code, timm).

How a shortcut *rule* meets this: the block computes ``rule(F(x), downsample(x))`` (pre-activation
blocks: ``rule(F(a), downsample(a))`` with ``a = ReLU(BN(x))``), so every rule acts after the
downsample, on the block's out-channels (its ``Site.dim``). LAuReL-LR's low-rank map
and RW's weights therefore see the padded or projected stream; LAuReL-PA records that stream in the
forward's ``hiddens`` and mixes only same-shape entries, so its previous activations never cross a
stage boundary. ``shortcut="none"`` (the plain net) has no
downsample path at all: the block builds none.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from ..branches.conv import conv1x1, image_norm, init_conv_bn_
from ..errors import ConfigError, check
from ..norms import NormFactory

DownsampleKind = Literal["conv", "pad"]
DOWNSAMPLE_KINDS = ("conv", "pad")


class PadDownsample(nn.Module):
    """Option A: ``x[:, :, ::s, ::s]`` with ``out - in`` zero channels appended (fb.resnet.torch's CIFAR shortcut)."""

    def __init__(self, in_chans: int, out_chans: int, stride: int = 1) -> None:
        super().__init__()
        check(
            out_chans >= in_chans, "downsample", f"'pad' cannot shrink {in_chans} to {out_chans} channels; valid: conv"
        )
        self.in_chans, self.out_chans, self.stride = in_chans, out_chans, stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride > 1:
            x = x[:, :, :: self.stride, :: self.stride]  # same size as a stride-s 3x3/pad-1 conv: ceil(H/s)
        return F.pad(x, (0, 0, 0, 0, 0, self.out_chans - self.in_chans))

    def extra_repr(self) -> str:
        return f"{self.in_chans}, {self.out_chans}, stride={self.stride}"


def conv_downsample(in_chans: int, out_chans: int, stride: int, norm_layer: str | NormFactory | None) -> nn.Sequential:
    """Option B: ``Sequential(conv1x1(stride), BN)``, keys ``0``/``1`` as torchvision; no BN if ``norm_layer=None``."""
    layers: list[nn.Module] = [conv1x1(in_chans, out_chans, stride)]
    if norm_layer is not None:
        layers.append(image_norm(norm_layer)(out_chans))
    ds = nn.Sequential(*layers)
    init_conv_bn_(ds)
    return ds


def check_kind(kind: str) -> None:
    if kind not in DOWNSAMPLE_KINDS:
        raise ConfigError(f"downsample: unknown kind {kind!r}; valid: {', '.join(DOWNSAMPLE_KINDS)}")


def make_downsample(
    kind: DownsampleKind,
    in_chans: int,
    out_chans: int,
    stride: int,
    norm_layer: str | NormFactory | None = nn.BatchNorm2d,
) -> nn.Module | None:
    """The shape adapter for x, or None when the block keeps the shape (then x passes untouched)."""
    check_kind(kind)
    check(stride >= 1, "stride", f"{stride}; valid: an integer >= 1")
    if stride == 1 and in_chans == out_chans:
        return None
    if kind == "pad":
        return PadDownsample(in_chans, out_chans, stride)
    return conv_downsample(in_chans, out_chans, stride, norm_layer)


__all__ = ["DOWNSAMPLE_KINDS", "DownsampleKind", "PadDownsample", "check_kind", "conv_downsample", "make_downsample"]
