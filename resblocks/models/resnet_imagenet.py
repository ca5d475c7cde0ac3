"""ImageNet ResNets in torchvision's layout (He et al. 2016, arXiv 1512.03385, Table 1; torchvision "v1.5").

7x7/2 conv stem + 3x3/2 max-pool, four stages at 64/128/256/512 planes (strides 1, 2, 2, 2), global
average pooling, linear head. Shape-changing shortcuts are option B (1x1 conv + BN), bottlenecks
stride on their 3x3 conv. With ``shortcut="identity"`` the parameters equal torchvision's (resnet50:
25,557,032) and ``torchvision.models.resnet50()`` weights load after inserting ``branch.`` into the
block keys: ``model.load_state_dict(from_torchvision(tv_model.state_dict()))``. On 28x28 inputs the feature map
shrinks to 1x1 in the last stage, which still works.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

import torch
from torch import nn

from ..blocks.downsample import DownsampleKind
from ..errors import check
from ..shortcuts import ShortcutSpec
from . import MODELS
from ._cnn import ResidualCNN, block_options, doubling_stages
from ._variants import register_variant

_TV_BLOCK_KEY = re.compile(r"layer(\d+)\.(\d+)\.(.+)")


def from_torchvision(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename torchvision ResNet / ResNeXt / WRN-50-2 keys to this layout.

    ``conv1.weight`` -> ``stem.conv1.weight``, ``layer2.0.conv1.weight`` -> ``stages.1.0.branch.conv1.weight``,
    ``layer2.0.downsample.0.weight`` -> ``stages.1.0.downsample.0.weight``; ``fc`` keeps its name.
    The shortcut rule's own parameters (if any) are not in torchvision's model: load with ``strict=False``.
    """
    out = {}
    for key, value in state_dict.items():
        if m := _TV_BLOCK_KEY.fullmatch(key):
            rest = m[3] if m[3].startswith("downsample.") else f"branch.{m[3]}"
            key = f"stages.{int(m[1]) - 1}.{m[2]}.{rest}"
        elif key.startswith(("conv1.", "bn1.")):
            key = f"stem.{key}"
        out[key] = value
    return out


@MODELS.register("resnet")
def resnet(
    *,
    num_classes: int,
    layers: Sequence[int] = (2, 2, 2, 2),
    block: str = "basic",
    preact: bool = False,
    in_chans: int = 3,
    shortcut: ShortcutSpec = "identity",
    downsample: DownsampleKind = "conv",
    groups: int = 1,
    base_width: int = 64,
    zero_init_last: bool = False,
    drop_path_rate: float = 0.0,
    layer_scale_init: float | None = None,
    global_pool: str = "avg",
    head_drop_rate: float = 0.0,
) -> nn.Module:
    """ImageNet ResNet with ``layers`` blocks per stage; ``block`` is ``basic`` or ``bottleneck``.

    ``groups``/``base_width`` (bottleneck only) give ResNeXt (Xie et al. 2017) and WRN-50-2.
    ``preact=True`` uses pre-activation blocks (arXiv 1603.05027) with a bare 7x7 conv + max-pool
    stem and a final BN-ReLU, as timm's ResNetV2; not a reproduction of a specific paper table.

    Args: ``num_classes``/``in_chans`` size head and stem (``num_classes=0``: no classifier); the residual
    options go to every block as they are (``BLOCK_OPTIONS``, documented by :class:`~resblocks.blocks.conv.ConvBlock`);
    ``global_pool`` (``avg``, ``max``, ``""``) and ``head_drop_rate`` (timm's ``drop_rate``) shape the head.
    """
    check(block in ("basic", "bottleneck"), "block", f"{block!r}; valid: basic, bottleneck")
    check(len(layers) == 4 and all(n >= 1 for n in layers), "layers", f"{tuple(layers)}; valid: four integers >= 1")
    wide = {"groups": groups, "base_width": base_width}
    if block == "basic":
        check(
            groups == 1 and base_width == 64, "groups", f"{wide} needs block=bottleneck; valid: groups=1, base_width=64"
        )
        wide = {}
    return ResidualCNN(
        f"preact_{block}" if preact else block,
        doubling_stages(layers, 64),
        num_classes=num_classes,
        in_chans=in_chans,
        stem="imagenet",
        stem_width=64,
        **block_options(locals()),
        **wide,
    )


_T1 = "(arXiv 1512.03385, Table 1; torchvision layout)"
resnet18 = register_variant("resnet18", resnet, f"ResNet-18 {_T1}.", layers=(2, 2, 2, 2), block="basic")
resnet34 = register_variant("resnet34", resnet, f"ResNet-34 {_T1}.", layers=(3, 4, 6, 3), block="basic")
resnet50 = register_variant(
    "resnet50", resnet, f"ResNet-50, 25.6M params {_T1}.", layers=(3, 4, 6, 3), block="bottleneck"
)
resnet101 = register_variant("resnet101", resnet, f"ResNet-101 {_T1}.", layers=(3, 4, 23, 3), block="bottleneck")
resnet152 = register_variant("resnet152", resnet, f"ResNet-152 {_T1}.", layers=(3, 8, 36, 3), block="bottleneck")
preact_resnet18 = register_variant(
    "preact_resnet18",
    resnet,
    "Pre-act ResNet-18 (arXiv 1603.05027 blocks, ImageNet stages).",
    layers=(2, 2, 2, 2),
    block="basic",
    preact=True,
)
preact_resnet50 = register_variant(
    "preact_resnet50",
    resnet,
    "Pre-act ResNet-50 (arXiv 1603.05027 blocks, ImageNet stages).",
    layers=(3, 4, 6, 3),
    block="bottleneck",
    preact=True,
)
