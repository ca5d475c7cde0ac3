"""Conv residual blocks: ``basic``, ``bottleneck`` (post-activation) and ``preact_basic``, ``preact_bottleneck``.

Each is a :class:`~resblocks.blocks.residual.Residual` made of a conv branch F, a shortcut rule built
from ``Site(dim=out channels, layout="image", index, total, history)`` and, where the shape changes,
a downsample for x (:mod:`~resblocks.blocks.downsample`):

* post-activation (He et al. 2016, arXiv 1512.03385): ``relu(rule(F(x), downsample(x)))``; the rule acts
  on the pre-ReLU sum, so ``identity`` is torchvision's ``BasicBlock`` / ``Bottleneck`` exactly;
* pre-activation (He et al. 2016b, arXiv 1603.05027): ``rule(F(a), x)`` with ``a = ReLU(BN(x))`` in the
  ``pre_norm`` slot and nothing after the merge, so the identity path stays clean. Where the shape
  changes, the downsample reads ``a`` too: ``rule(F(a), downsample(a))``, as in the authors' code
  (``KaimingHe/resnet-1k-layers``, "both_preact"), the Wide ResNet code and timm's ``PreActBasic``,
  so the un-normalised stream never feeds a conv.

``shortcut="none"`` gives the plain net (arXiv 1512.03385, Fig. 3 middle): no shortcut path at all.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn

from ..branches.conv import ActFactory, BasicBranch, BottleneckBranch, ConvBranch, norm_act
from ..errors import check
from ..norms import NormFactory
from ..shortcuts import SHORTCUTS, ActivationHistory, ShortcutFactory, ShortcutSpec, Site, as_factory
from . import BLOCKS
from .downsample import DownsampleKind, check_kind, make_downsample
from .residual import Residual


def relu_inplace() -> nn.Module:
    """The blocks' default activation: a ReLU that overwrites its input, as torchvision's blocks do.

    One activation-sized tensor less per ReLU (what made the block 5-15% slower than torchvision's in
    float32, ``benchmarks/``, group ``blocks``). Safe here: each ReLU follows a BN or a shortcut merge,
    and neither reads its own output in the backward (a rule that did would fail loudly in autograd).
    """
    return nn.ReLU(inplace=True)


class ConvBlock(Residual):
    """Wraps a conv ``branch`` with its rule, its downsample and (post-act) the ReLU or (pre-act) the BN-ReLU."""

    preact: ClassVar[bool] = False

    def __init__(
        self,
        branch: ConvBranch,
        in_chans: int,
        stride: int,
        *,
        shortcut: ShortcutSpec | ShortcutFactory,
        downsample: DownsampleKind,
        index: int,
        total: int,
        history: ActivationHistory | None,
        norm_layer: str | NormFactory,
        act_layer: ActFactory,
    ) -> None:
        check(0 <= index < total, "index", f"{index} outside the network's {total} blocks; valid: 0..{total - 1}")
        check_kind(downsample)
        rule = as_factory(shortcut)(Site(branch.out_chans, "image", index, total, history))
        required = type(rule).requires_norm
        check(
            required is None,
            "shortcut",
            f"{type(rule).__name__} needs norm placement {required!r}; conv blocks fix theirs",
        )
        plain = isinstance(rule, SHORTCUTS.get("none"))  # no shortcut path, so no downsample for it either
        out = branch.out_chans
        ds = None if plain else make_downsample(downsample, in_chans, out, stride, None if self.preact else norm_layer)
        if self.preact:
            super().__init__(branch, rule, pre_norm=norm_act(in_chans, norm_layer, act_layer), downsample=ds)
        else:
            super().__init__(branch, rule, downsample=ds, post_act=act_layer())
        self.shared_preact = self.preact and ds is not None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.shared_preact:
            return super().forward(x)
        a = self.pre_norm(x)
        return self.shortcut(self.branch(a), self.downsample(a))


@BLOCKS.register("basic")
class BasicBlock(ConvBlock):
    """Basic block ``relu(rule(BN(conv(drop(relu(BN(conv(x)))))), downsample(x)))`` (arXiv 1512.03385, Fig. 2).

    ``drop_rate > 0`` adds dropout between the convs (the Wide ResNet block, arXiv 1605.07146).
    """

    def __init__(
        self,
        in_chans: int,
        out_chans: int,
        *,
        stride: int = 1,
        shortcut: ShortcutSpec | ShortcutFactory = "identity",
        downsample: DownsampleKind = "conv",
        index: int = 0,
        total: int = 1,
        history: ActivationHistory | None = None,
        zero_init_last: bool = False,
        drop_rate: float = 0.0,
        norm_layer: str | NormFactory = nn.BatchNorm2d,
        act_layer: ActFactory = relu_inplace,
    ) -> None:
        branch = BasicBranch(
            in_chans,
            out_chans,
            stride,
            preact=self.preact,
            drop_rate=drop_rate,
            norm_layer=norm_layer,
            act_layer=act_layer,
            zero_init_last=zero_init_last,
        )
        super().__init__(
            branch,
            in_chans,
            stride,
            shortcut=shortcut,
            downsample=downsample,
            index=index,
            total=total,
            history=history,
            norm_layer=norm_layer,
            act_layer=act_layer,
        )


@BLOCKS.register("bottleneck")
class BottleneckBlock(ConvBlock):
    """Bottleneck block, ``planes * expansion`` out channels (arXiv 1512.03385 Fig. 5; ResNeXt via ``groups``)."""

    def __init__(
        self,
        in_chans: int,
        planes: int,
        *,
        stride: int = 1,
        shortcut: ShortcutSpec | ShortcutFactory = "identity",
        downsample: DownsampleKind = "conv",
        index: int = 0,
        total: int = 1,
        history: ActivationHistory | None = None,
        zero_init_last: bool = False,
        groups: int = 1,
        base_width: int = 64,
        expansion: int = 4,
        norm_layer: str | NormFactory = nn.BatchNorm2d,
        act_layer: ActFactory = relu_inplace,
    ) -> None:
        branch = BottleneckBranch(
            in_chans,
            planes,
            stride,
            preact=self.preact,
            groups=groups,
            base_width=base_width,
            expansion=expansion,
            norm_layer=norm_layer,
            act_layer=act_layer,
            zero_init_last=zero_init_last,
        )
        super().__init__(
            branch,
            in_chans,
            stride,
            shortcut=shortcut,
            downsample=downsample,
            index=index,
            total=total,
            history=history,
            norm_layer=norm_layer,
            act_layer=act_layer,
        )


@BLOCKS.register("preact_basic")
class PreActBasicBlock(BasicBlock):
    """Full pre-activation basic block ``rule(conv(drop(relu(BN(conv(relu(BN(x))))))), x)`` (arXiv 1603.05027)."""

    preact = True


@BLOCKS.register("preact_bottleneck")
class PreActBottleneckBlock(BottleneckBlock):
    """Pre-activation bottleneck of ResNet-164/1001 (arXiv 1603.05027), ``planes * expansion`` out channels."""

    preact = True


__all__ = ["BasicBlock", "BottleneckBlock", "ConvBlock", "PreActBasicBlock", "PreActBottleneckBlock", "relu_inplace"]
