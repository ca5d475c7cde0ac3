"""Conv residual blocks: ``basic``, ``bottleneck`` (post-activation) and ``preact_basic``, ``preact_bottleneck``.

Each is a :class:`~resblocks.blocks.residual.Residual` made of a conv branch F, a shortcut rule built
from ``Site(dim=out channels, layout="image", index, total)`` and, where the shape changes,
a downsample for x (:mod:`~resblocks.blocks.downsample`):

* post-activation (He et al. 2016, arXiv 1512.03385): ``relu(rule(F(x), downsample(x)))``; the rule acts
  on the pre-ReLU sum, so ``identity`` is torchvision's ``BasicBlock`` / ``Bottleneck`` exactly;
* pre-activation (He et al. 2016b, arXiv 1603.05027): ``rule(F(a), x)`` with ``a = ReLU(BN(x))`` in the
  ``pre_norm`` slot and nothing after the merge, so the identity path stays clean. Where the shape
  changes, the downsample reads ``a`` too (``Residual(shared_pre_norm=True)``): ``rule(F(a), downsample(a))``, as in the authors' code
  (``KaimingHe/resnet-1k-layers``, "both_preact"), the Wide ResNet code and timm's ``PreActBasic``,
  so the un-normalised stream never feeds a conv.

``shortcut="none"`` gives the plain net (arXiv 1512.03385, Fig. 3 middle): no shortcut path at all.
"""

from __future__ import annotations

import inspect
from typing import Any, ClassVar

from torch import nn

from ..branches.conv import ActFactory, BasicBranch, BottleneckBranch, ConvBranch, norm_act
from ..errors import check
from ..norms import NormFactory
from ..modifiers import branch_output
from ..shortcuts import SHORTCUTS, ShortcutFactory, ShortcutSpec, Site, as_factory
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
    """A conv ``branch_cls`` branch with its rule, its downsample and (post-act) the ReLU or (pre-act) the BN-ReLU.

    Subclasses name their branch (``branch_cls``) and whether they pre-activate (``preact``); the
    branch's own keyword options (``drop_rate``; ``groups``, ``base_width``, ``expansion``) pass through
    ``**branch_options`` and are listed and checked by the registry with the block's (:meth:`branch_options`).

    Args:
        in_chans: input channels.
        width: output channels of a basic block, planes of a bottleneck (``planes * expansion`` out).
        stride: stride of the branch's strided conv and of the downsample.
        shortcut: the rule: a registry name, ``{"name": ..., **options}`` or a factory ``Site -> Shortcut``.
        downsample: ``"conv"`` (1x1 projection, option B) or ``"pad"`` (option A) where the shape changes.
        index: this block's position among the network's residual blocks, 0-based.
        total: number of residual blocks in the network.
        zero_init_last: zero the branch's last BN (post-act) or conv (pre-act): F = 0 at init.
        norm_layer: ``"batchnorm"`` or a norm factory ``chans -> nn.Module``.
        act_layer: activation factory (default: in-place ReLU).
        drop_path_rate: stochastic depth of the network's last block; this block's is
            ``linspace(0, drop_path_rate, total)[index]`` (:mod:`resblocks.modifiers`).
        layer_scale_init: LayerScale on the branch output with this init; ``None`` is off.
    """

    branch_cls: ClassVar[type[ConvBranch]]
    preact: ClassVar[bool] = False

    def __init__(
        self,
        in_chans: int,
        width: int,
        *,
        stride: int = 1,
        shortcut: ShortcutSpec | ShortcutFactory = "identity",
        downsample: DownsampleKind = "conv",
        index: int = 0,
        total: int = 1,
        zero_init_last: bool = False,
        norm_layer: str | NormFactory = nn.BatchNorm2d,
        act_layer: ActFactory = relu_inplace,
        drop_path_rate: float = 0.0,
        layer_scale_init: float | None = None,
        **branch_options: Any,
    ) -> None:
        check(0 <= index < total, "index", f"{index} outside the network's {total} blocks; valid: 0..{total - 1}")
        check_kind(downsample)
        branch = self.branch_cls(
            in_chans,
            width,
            stride,
            preact=self.preact,
            norm_layer=norm_layer,
            act_layer=act_layer,
            zero_init_last=zero_init_last,
            **branch_options,
        )
        out = branch.out_chans
        site = Site(out, "image", index, total)
        rule = as_factory(shortcut)(site)
        plain = isinstance(rule, SHORTCUTS.get("none"))  # no shortcut path, so no downsample for it either
        ds = None if plain else make_downsample(downsample, in_chans, out, stride, None if self.preact else norm_layer)
        branch_out = branch_output(site, drop_path_rate=drop_path_rate, layer_scale_init=layer_scale_init)
        if self.preact:
            super().__init__(
                branch,
                rule,
                pre_norm=norm_act(in_chans, norm_layer, act_layer),
                downsample=ds,
                branch_out=branch_out,
                placement="pre_act",
                shared_pre_norm=ds is not None,
            )
        else:
            super().__init__(
                branch, rule, downsample=ds, post_act=act_layer(), branch_out=branch_out, placement="post_act"
            )

    @classmethod
    def branch_options(cls) -> dict[str, Any]:
        """The branch's own keyword options and defaults (those the block does not set itself)."""
        params = inspect.signature(cls.branch_cls.__init__).parameters.values()
        own = inspect.signature(ConvBlock.__init__).parameters.keys() | {"preact"}
        return {p.name: p.default for p in params if p.kind is p.KEYWORD_ONLY and p.name not in own}


@BLOCKS.register("basic")
class BasicBlock(ConvBlock):
    """Basic block ``relu(rule(BN(conv(drop(relu(BN(conv(x)))))), downsample(x)))`` (arXiv 1512.03385, Fig. 2).

    ``drop_rate > 0`` adds dropout between the convs (the Wide ResNet block, arXiv 1605.07146).
    """

    branch_cls = BasicBranch


@BLOCKS.register("bottleneck")
class BottleneckBlock(ConvBlock):
    """Bottleneck block, ``planes * expansion`` out channels (arXiv 1512.03385 Fig. 5; ResNeXt via ``groups``).

    ``width`` is the planes; ``groups``, ``base_width`` and ``expansion`` are the branch's options.
    """

    branch_cls = BottleneckBranch


@BLOCKS.register("preact_basic")
class PreActBasicBlock(BasicBlock):
    """Full pre-activation basic block ``rule(conv(drop(relu(BN(conv(relu(BN(x))))))), x)`` (arXiv 1603.05027)."""

    preact = True


@BLOCKS.register("preact_bottleneck")
class PreActBottleneckBlock(BottleneckBlock):
    """Pre-activation bottleneck of ResNet-164/1001 (arXiv 1603.05027), ``planes * expansion`` out channels."""

    preact = True


__all__ = ["BasicBlock", "BottleneckBlock", "ConvBlock", "PreActBasicBlock", "PreActBottleneckBlock", "relu_inplace"]
