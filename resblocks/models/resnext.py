"""ResNeXt (Xie et al. 2017, "Aggregated Residual Transformations for Deep Neural Networks", arXiv 1611.05431).

The bottleneck's 3x3 conv is grouped: cardinality C groups of width d (Fig. 3c), inner width
``C * d * planes / 64``. CIFAR (Sec. 5.3): a 3x3 conv with 64 filters, three stages of n = (depth-2)/9
bottlenecks with 256/512/1024 output channels (planes 64/128/256; the group width doubles with each
stage), projection shortcuts where the shape changes; ResNeXt-29 8x64d has 34.4M parameters (Table 7).
ImageNet variants reuse :func:`~resblocks.models.resnet_imagenet.resnet` (torchvision's
``resnext50_32x4d``: 25,028,904 parameters).
"""

from __future__ import annotations

from torch import nn

from ..blocks.downsample import DownsampleKind
from ..shortcuts import ShortcutSpec
from . import MODELS
from ._cnn import ResidualCNN, block_options, blocks_per_stage, doubling_stages
from ._variants import register_variant
from .resnet_imagenet import resnet


@MODELS.register("resnext")
def resnext(
    *,
    num_classes: int,
    depth: int = 29,
    cardinality: int = 8,
    base_width: int = 64,
    in_chans: int = 3,
    shortcut: ShortcutSpec = "identity",
    downsample: DownsampleKind = "conv",
    zero_init_last: bool = False,
    drop_path_rate: float = 0.0,
    layer_scale_init: float | None = None,
    global_pool: str = "avg",
    head_drop_rate: float = 0.0,
) -> nn.Module:
    """CIFAR ResNeXt-``depth`` (``cardinality`` x ``base_width``d); depth = 9n+2.

    Args: ``num_classes``/``in_chans`` size head and stem (``num_classes=0``: no classifier); the residual
    options go to every block as they are (``BLOCK_OPTIONS``, documented by :class:`~resblocks.blocks.conv.ConvBlock`);
    ``global_pool`` (``avg``, ``max``, ``""``) and ``head_drop_rate`` (timm's ``drop_rate``) shape the head.
    """
    n = blocks_per_stage(depth, per_block=3, extra=2)
    return ResidualCNN(
        "bottleneck",
        doubling_stages((n, n, n), 64),
        num_classes=num_classes,
        in_chans=in_chans,
        stem="cifar",
        stem_width=64,
        **block_options(locals()),
        groups=cardinality,
        base_width=base_width,
    )


_X = "(arXiv 1611.05431"
resnext29_8x64d = register_variant(
    "resnext29_8x64d",
    resnext,
    f"ResNeXt-29 8x64d, 34.4M params {_X}, Table 7).",
    depth=29,
    cardinality=8,
    base_width=64,
)
resnext29_16x64d = register_variant(
    "resnext29_16x64d",
    resnext,
    f"ResNeXt-29 16x64d, 68.1M params {_X}, Table 7).",
    depth=29,
    cardinality=16,
    base_width=64,
)
resnext50_32x4d = register_variant(
    "resnext50_32x4d",
    resnet,
    f"ResNeXt-50 32x4d, torchvision layout {_X}, Table 1).",
    layers=(3, 4, 6, 3),
    block="bottleneck",
    groups=32,
    base_width=4,
)
resnext101_32x8d = register_variant(
    "resnext101_32x8d",
    resnet,
    f"ResNeXt-101 32x8d, torchvision layout {_X}).",
    layers=(3, 4, 23, 3),
    block="bottleneck",
    groups=32,
    base_width=8,
)
