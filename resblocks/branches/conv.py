"""Conv branches: the F of the basic and bottleneck ResNet blocks, post- or pre-activation.

He et al. 2016, "Deep Residual Learning for Image Recognition" (arXiv 1512.03385), Fig. 5.
Attribute names (``conv1``/``bn1``/``conv2``/``bn2``/``conv3``/``bn3``) follow torchvision's
``BasicBlock``/``Bottleneck`` so its weights copy one-to-one into ``block.branch``; ``bnK`` always
normalises ``convK``'s output. Post-activation: the final ReLU is not part of F, the block applies
it after the shortcut rule (``relu(rule(F(x), x))``).

Pre-activation (``preact=True``; He et al. 2016b, "Identity Mappings in Deep Residual Networks",
arXiv 1603.05027): F = BN -> ReLU -> conv -> BN -> ReLU -> conv. The *first* BN-ReLU is not in the
branch: the block puts it in the Residual's ``pre_norm`` slot, so the identity path carries x with no
BN or ReLU on it, and a shape-changing shortcut can share the pre-activation with the branch as in
the authors' code (:class:`~resblocks.blocks.conv.ConvBlock`). The branch then ends at its last conv
(no BN after it); ``zero_init_last`` zeroes that conv, as timm's ``PreActBottleneck``.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

import torch
from torch import nn

from ..errors import check
from ..norms import NormFactory, norm_factory
from ._output import zero_output_

ActFactory = Callable[[], nn.Module]


def image_norm(norm_layer: str | NormFactory) -> NormFactory:
    """A norm factory for ``[B, C, H, W]`` images: a registry name (``batchnorm``) or a factory (``nn.BatchNorm2d``)."""
    if callable(norm_layer):
        return norm_layer
    check(norm_layer == "batchnorm", "norm_layer", f"{norm_layer!r} does not normalise images; valid: batchnorm")
    return norm_factory(norm_layer)


def conv3x3(in_chans: int, out_chans: int, stride: int = 1, groups: int = 1) -> nn.Conv2d:
    # No bias: a BatchNorm follows every conv (or precedes it, in pre-activation blocks).
    return nn.Conv2d(in_chans, out_chans, 3, stride=stride, padding=1, groups=groups, bias=False)


def conv1x1(in_chans: int, out_chans: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_chans, out_chans, 1, stride=stride, bias=False)


def norm_act(chans: int, norm_layer: str | NormFactory, act_layer: ActFactory) -> nn.Sequential:
    """``BN -> ReLU`` as a named pair (``bn``, ``act``): a block's pre-activation and a pre-act net's final unit."""
    return nn.Sequential(OrderedDict(bn=image_norm(norm_layer)(chans), act=act_layer()))


@torch.no_grad()
def init_conv_bn_(module: nn.Module) -> None:
    """He init for convs (``kaiming_normal_``, fan_out, ReLU gain; He et al. 2015 / torchvision), norms at (1, 0).

    Applied by each component to its own layers only, so a model never re-initialises the
    parameters of a learned shortcut rule (e.g. LAuReL's zero-initialised up-projection).
    """
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.modules.batchnorm._BatchNorm, nn.GroupNorm)):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


def bottleneck_width(planes: int, groups: int, base_width: int) -> int:
    """Bottleneck inner width ``int(planes * base_width / 64) * groups`` (torchvision; ResNeXt C x d, WRN-50-2)."""
    check(groups >= 1 and base_width >= 1, "groups", f"groups={groups}, base_width={base_width}; valid: integers >= 1")
    width = int(planes * (base_width / 64.0)) * groups
    check(
        width >= groups,
        "base_width",
        f"{base_width} gives an empty bottleneck for planes={planes}; valid: larger values",
    )
    return width


class ConvBranch(nn.Module):
    """Shared init for the conv branches: He init, then ``zero_init_last`` zeroes :meth:`output_layer`.

    ``zero_init_last`` (torchvision ``zero_init_residual``; Goyal et al. 2017, arXiv 1706.02677) makes
    F(x) = 0 at init. It is this branch's one "starts at zero" mechanism: the Residual wrapper refuses it
    together with a shortcut rule whose gate starts at zero (ReZero).
    """

    out_chans: int
    zero_init_last: bool
    output_layer: Callable[[], nn.Module]  # the layer whose output is F(x): the last BN, or the last conv if pre-act

    def reset_parameters(self) -> None:
        init_conv_bn_(self)
        if self.zero_init_last:
            zero_output_(self)


class BasicBranch(ConvBranch):
    """``F(x) = BN(conv3x3(ReLU(BN(conv3x3_stride(x)))))``: the basic block's F (arXiv 1512.03385, Fig. 5 left).

    ``preact=True`` is the full pre-activation form (He et al. 2016b, arXiv 1603.05027, Fig. 4e): the
    block's ``pre_norm`` pre-activates the input, and no BN follows ``conv2`` (``bn2`` is an Identity).
    ``drop_rate`` puts dropout between the convs, after the ReLU: the Wide ResNet block
    (Zagoruyko & Komodakis 2016, arXiv 1605.07146, Sec. 2.4).
    """

    def __init__(
        self,
        in_chans: int,
        out_chans: int,
        stride: int = 1,
        *,
        preact: bool = False,
        drop_rate: float = 0.0,
        norm_layer: str | NormFactory = nn.BatchNorm2d,
        act_layer: ActFactory = nn.ReLU,
        zero_init_last: bool = False,
    ) -> None:
        super().__init__()
        norm = image_norm(norm_layer)
        self.out_chans, self.preact, self.zero_init_last = out_chans, preact, zero_init_last
        self.conv1 = conv3x3(in_chans, out_chans, stride)
        self.bn1 = norm(out_chans)
        self.act1 = act_layer()
        self.drop = nn.Dropout(drop_rate) if drop_rate > 0 else nn.Identity()
        self.conv2 = conv3x3(out_chans, out_chans)
        self.bn2 = nn.Identity() if preact else norm(out_chans)
        self.reset_parameters()

    def output_layer(self) -> nn.Module:
        return self.conv2 if self.preact else self.bn2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn2(self.conv2(self.drop(self.act1(self.bn1(self.conv1(x))))))


class BottleneckBranch(ConvBranch):
    """``1x1 -> BN -> ReLU -> 3x3(stride, groups) -> BN -> ReLU -> 1x1 (planes * expansion) -> BN``.

    He et al. 2016 (arXiv 1512.03385), Fig. 5 right, with the stride on the 3x3 conv (torchvision
    "ResNet v1.5"; the paper strides the first 1x1). ``groups``/``base_width`` give ResNeXt's
    aggregated transform (Xie et al. 2017, arXiv 1611.05431, Fig. 3c: grouped 3x3 of width C*d) and
    the wide bottleneck of WRN-50-2 (``base_width=128``). ``preact=True`` drops ``bn3``: the
    pre-activation bottleneck of ResNet-164/1001 (arXiv 1603.05027; stride on the 3x3 as in the
    authors' ``resnet-1k-layers`` code and timm).
    """

    def __init__(
        self,
        in_chans: int,
        planes: int,
        stride: int = 1,
        *,
        preact: bool = False,
        groups: int = 1,
        base_width: int = 64,
        expansion: int = 4,
        norm_layer: str | NormFactory = nn.BatchNorm2d,
        act_layer: ActFactory = nn.ReLU,
        zero_init_last: bool = False,
    ) -> None:
        super().__init__()
        norm, width = image_norm(norm_layer), bottleneck_width(planes, groups, base_width)
        self.out_chans, self.preact, self.zero_init_last = planes * expansion, preact, zero_init_last
        self.conv1 = conv1x1(in_chans, width)
        self.bn1 = norm(width)
        self.act1 = act_layer()
        self.conv2 = conv3x3(width, width, stride, groups)
        self.bn2 = norm(width)
        self.act2 = act_layer()
        self.conv3 = conv1x1(width, self.out_chans)
        self.bn3 = nn.Identity() if preact else norm(self.out_chans)
        self.reset_parameters()

    def output_layer(self) -> nn.Module:
        return self.conv3 if self.preact else self.bn3

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act1(self.bn1(self.conv1(x)))
        x = self.act2(self.bn2(self.conv2(x)))
        return self.bn3(self.conv3(x))


__all__ = [
    "BasicBranch",
    "BottleneckBranch",
    "ConvBranch",
    "bottleneck_width",
    "conv1x1",
    "conv3x3",
    "image_norm",
    "init_conv_bn_",
    "norm_act",
]
