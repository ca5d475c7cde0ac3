"""Wide ResNets (Zagoruyko & Komodakis 2016, "Wide Residual Networks", arXiv 1605.07146).

WRN-d-k for CIFAR: a 3x3 conv with 16 filters, then three stages of n = (d-4)/6 pre-activation basic
blocks ("B(3,3)") with 16k/32k/64k filters, strides 1/2/2, a final BN-ReLU and global average pooling
(Table 1). Dropout, if any, sits between the two convs of each block, after the ReLU (Sec. 2.4).
Shape-changing shortcuts are 1x1 projections of the pre-activated input, as in the official code.
WRN-28-10 has 36.5M parameters and WRN-40-4 8.9M (Tables 4 and 5).

``wide_resnet50_2`` is torchvision's ImageNet WRN-50-2 (bottleneck inner width doubled, post-activation).
"""

from __future__ import annotations

from torch import nn

from ..blocks.downsample import DownsampleKind
from ..errors import check
from ..shortcuts import ShortcutSpec
from . import MODELS
from ._cnn import ResidualCNN, block_options, blocks_per_stage, doubling_stages
from ._variants import register_variant
from .resnet_imagenet import resnet


@MODELS.register("wide_resnet")
def wide_resnet(
    *,
    num_classes: int,
    depth: int = 28,
    widen_factor: int = 10,
    dropout: float = 0.0,
    in_chans: int = 3,
    shortcut: ShortcutSpec = "identity",
    downsample: DownsampleKind = "conv",
    zero_init_last: bool = False,
    drop_path_rate: float = 0.0,
    layer_scale_init: float | None = None,
    global_pool: str = "avg",
    head_drop_rate: float = 0.0,
) -> nn.Module:
    """WRN-``depth``-``widen_factor``: ``depth`` = 6n+4 for n blocks per stage (the official code's check).

    Args: ``num_classes``/``in_chans`` size head and stem (``num_classes=0``: no classifier); the residual
    options go to every block as they are (``BLOCK_OPTIONS``, documented by :class:`~resblocks.blocks.conv.ConvBlock`);
    ``global_pool`` (``avg``, ``max``, ``""``) and ``head_drop_rate`` (timm's ``drop_rate``) shape the head.
    """
    check(widen_factor >= 1, "widen_factor", f"{widen_factor}; valid: an integer >= 1")
    check(0.0 <= dropout < 1.0, "dropout", f"{dropout}; valid: [0, 1)")
    n = blocks_per_stage(depth, per_block=2, extra=4)
    return ResidualCNN(
        "preact_basic",
        doubling_stages((n, n, n), 16 * widen_factor),
        num_classes=num_classes,
        in_chans=in_chans,
        stem="cifar",
        stem_width=16,
        **block_options(locals()),
        drop_rate=dropout,
    )


wrn_28_10 = register_variant(
    "wrn_28_10", wide_resnet, "WRN-28-10, 36.5M params (arXiv 1605.07146, Table 4).", depth=28, widen_factor=10
)
wrn_40_4 = register_variant(
    "wrn_40_4", wide_resnet, "WRN-40-4, 8.9M params (arXiv 1605.07146, Table 4).", depth=40, widen_factor=4
)
wrn_16_8 = register_variant(
    "wrn_16_8", wide_resnet, "WRN-16-8, 11.0M params (arXiv 1605.07146, Table 4).", depth=16, widen_factor=8
)
wide_resnet50_2 = register_variant(
    "wide_resnet50_2",
    resnet,
    "WRN-50-2 in torchvision's layout: ResNet-50 with bottleneck width x2 (arXiv 1605.07146, Sec. 5 ImageNet).",
    layers=(3, 4, 6, 3),
    block="bottleneck",
    groups=1,
    base_width=128,
)
