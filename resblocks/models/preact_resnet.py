"""Pre-activation ResNets (He et al. 2016b, "Identity Mappings in Deep Residual Networks", arXiv 1603.05027).

Blocks are ``x + F(BN-ReLU(x))`` with nothing after the addition; the stem is a bare conv, and a
final BN-ReLU precedes the pooling (the stream itself is never normalised). CIFAR: a 3x3 conv with
16 filters and three stages of 16/32/64 (basic, depth 6n+2) or 64/128/256 channels (bottleneck with
planes 16/32/64, depth 9n+2): ResNet-164 has 1.7M and ResNet-1001 10.2M parameters (Table 2/3).
Shape-changing shortcuts are 1x1 projections of the pre-activated input (the authors' code); pass
``downsample="pad"`` for option A.

ImageNet-style ``preact_resnet18``/``50`` are variants of :func:`~resblocks.models.resnet_imagenet.resnet`.
"""

from __future__ import annotations

from torch import nn

from ..blocks.downsample import DownsampleKind
from ..errors import check
from ..shortcuts import ShortcutSpec
from . import MODELS
from ._cnn import ResidualCNN, block_options, blocks_per_stage, doubling_stages
from ._variants import register_variant


@MODELS.register("preact_resnet")
def preact_resnet(
    *,
    num_classes: int,
    depth: int = 164,
    block: str = "bottleneck",
    in_chans: int = 3,
    shortcut: ShortcutSpec = "identity",
    downsample: DownsampleKind = "conv",
    width: int = 16,
    zero_init_last: bool = False,
    drop_path_rate: float = 0.0,
    layer_scale_init: float | None = None,
    global_pool: str = "avg",
    head_drop_rate: float = 0.0,
) -> nn.Module:
    """CIFAR pre-act ResNet-``depth``: ``block="basic"`` needs depth 6n+2, ``"bottleneck"`` depth 9n+2.

    Args: ``num_classes``/``in_chans`` size head and stem (``num_classes=0``: no classifier); the residual
    options go to every block as they are (``BLOCK_OPTIONS``, documented by :class:`~resblocks.blocks.conv.ConvBlock`);
    ``global_pool`` (``avg``, ``max``, ``""``) and ``head_drop_rate`` (timm's ``drop_rate``) shape the head.
    """
    check(block in ("basic", "bottleneck"), "block", f"{block!r}; valid: basic, bottleneck")
    n = blocks_per_stage(depth, per_block=2 if block == "basic" else 3, extra=2)
    return ResidualCNN(
        f"preact_{block}",
        doubling_stages((n, n, n), width),
        num_classes=num_classes,
        in_chans=in_chans,
        stem="cifar",
        stem_width=width,
        **block_options(locals()),
    )


_P = "(arXiv 1603.05027)"
preact_resnet110 = register_variant(
    "preact_resnet110", preact_resnet, f"Pre-act ResNet-110, basic blocks, 1.7M params {_P}.", depth=110, block="basic"
)
preact_resnet164 = register_variant(
    "preact_resnet164",
    preact_resnet,
    f"Pre-act ResNet-164, bottlenecks, 1.7M params {_P}.",
    depth=164,
    block="bottleneck",
)
preact_resnet1001 = register_variant(
    "preact_resnet1001",
    preact_resnet,
    f"Pre-act ResNet-1001, bottlenecks, 10.2M params {_P}.",
    depth=1001,
    block="bottleneck",
)
