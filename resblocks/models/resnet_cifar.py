"""CIFAR ResNets of depth 6n+2 (He et al. 2016, "Deep Residual Learning for Image Recognition", arXiv 1512.03385).

Sec. 4.2: a 3x3 conv with 16 filters, then three stages of n basic blocks with 16/32/64 filters on feature
maps of 32/16/8 pixels (28/14/7 for Fashion-MNIST), global average pooling and a linear classifier.
Shortcuts are option A (``downsample="pad"``: identity, zero-padded where the shape changes), so the
network has the parameters of its plain counterpart: 0.27M / 0.46M / 0.66M / 0.85M / 1.7M / 19.4M
for depth 20 / 32 / 44 / 56 / 110 / 1202 (Table 6). Convs use He init (fan_out, as torchvision).
"""

from __future__ import annotations

from torch import nn

from ..blocks.downsample import DownsampleKind
from ..shortcuts import ShortcutSpec
from . import MODELS
from ._cnn import ResidualCNN, block_options, blocks_per_stage, doubling_stages
from ._variants import register_variant


@MODELS.register("cifar_resnet")
def cifar_resnet(
    *,
    num_classes: int,
    depth: int = 20,
    in_chans: int = 3,
    shortcut: ShortcutSpec = "identity",
    downsample: DownsampleKind = "pad",
    width: int = 16,
    zero_init_last: bool = False,
    drop_path_rate: float = 0.0,
    layer_scale_init: float | None = None,
    global_pool: str = "avg",
    head_drop_rate: float = 0.0,
) -> nn.Module:
    """ResNet-``depth`` for 32x32 (or 28x28) images; ``depth`` = 6n+2, stage widths ``width * (1, 2, 4)``.

    ``shortcut="none"`` is the paper's plain net of the same depth (Fig. 6 left).

    Args: ``num_classes``/``in_chans`` size head and stem (``num_classes=0``: no classifier); the residual
    options go to every block as they are (``BLOCK_OPTIONS``, documented by :class:`~resblocks.blocks.conv.ConvBlock`);
    ``global_pool`` (``avg``, ``max``, ``""``) and ``head_drop_rate`` (timm's ``drop_rate``) shape the head.
    """
    n = blocks_per_stage(depth, per_block=2, extra=2)
    return ResidualCNN(
        "basic",
        doubling_stages((n, n, n), width),
        num_classes=num_classes,
        in_chans=in_chans,
        stem="cifar",
        stem_width=width,
        **block_options(locals()),
    )


_TABLE6 = "(arXiv 1512.03385, Table 6)"
cifar_resnet20 = register_variant("cifar_resnet20", cifar_resnet, f"CIFAR ResNet-20, 0.27M params {_TABLE6}.", depth=20)
cifar_resnet32 = register_variant("cifar_resnet32", cifar_resnet, f"CIFAR ResNet-32, 0.46M params {_TABLE6}.", depth=32)
cifar_resnet44 = register_variant("cifar_resnet44", cifar_resnet, f"CIFAR ResNet-44, 0.66M params {_TABLE6}.", depth=44)
cifar_resnet56 = register_variant("cifar_resnet56", cifar_resnet, f"CIFAR ResNet-56, 0.85M params {_TABLE6}.", depth=56)
cifar_resnet110 = register_variant(
    "cifar_resnet110", cifar_resnet, f"CIFAR ResNet-110, 1.7M params {_TABLE6}.", depth=110
)
cifar_resnet1202 = register_variant(
    "cifar_resnet1202", cifar_resnet, f"CIFAR ResNet-1202, 19.4M params {_TABLE6}.", depth=1202
)
