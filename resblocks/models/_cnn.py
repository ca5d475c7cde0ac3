"""The stage builder and network shell shared by every residual CNN family.

``ResidualCNN`` = stem -> stages of residual blocks -> (pre-act: final BN-ReLU) -> global average pool
-> linear. :func:`build_stages` owns the bookkeeping the families would otherwise repeat: the stride
of each stage's first block, the running channel count, and the network-wide ``Site`` position
(``index`` 0..total-1 in forward order, ``total`` = number of residual blocks). Whether a block needs a downsample is decided by
the block itself from the shapes (:func:`~resblocks.blocks.downsample.make_downsample`).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import nn

from ..blocks import BLOCKS
from ..branches.conv import conv3x3, image_norm, init_conv_bn_, norm_act
from ..errors import check
from ..norms import NormFactory
from ..blocks.residual import Residual
from ..branches._output import zero_output_
from ..shortcuts import Hiddens, ShortcutFactory, ShortcutSpec, as_factory
from ._interface import ClassifierMixin, Indices, take_indices

StemKind = Literal["cifar", "imagenet"]


@dataclass(frozen=True)
class Stage:
    """``depth`` blocks of ``width`` (out channels of basic blocks, planes of bottlenecks); the first has ``stride``."""

    depth: int
    width: int
    stride: int = 1


def doubling_stages(depths: Sequence[int], width: int) -> list[Stage]:
    """Stages of ``width * 2**i`` channels, the first at stride 1 and each later one halving the resolution.

    CIFAR nets: three stages (``width`` 16 for ResNet, 16k for WRN-d-k, 64 planes for ResNeXt);
    ImageNet nets: four stages of 64/128/256/512 planes after the stem's max-pool.
    """
    return [Stage(n, width * 2**i, 1 if i == 0 else 2) for i, n in enumerate(depths)]


def blocks_per_stage(depth: int, *, per_block: int, extra: int, stages: int = 3, key: str = "depth") -> int:
    """``n`` with ``depth = stages * per_block * n + extra`` (ResNet 6n+2, bottleneck 9n+2, WRN 6n+4)."""
    step = stages * per_block
    n, rest = divmod(depth - extra, step)
    check(
        rest == 0 and n >= 1,
        key,
        f"{depth}; valid: {step}n+{extra} for n >= 1 ({step + extra}, {2 * step + extra}, ...)",
    )
    return n


def build_stages(
    block: Callable[..., nn.Module],
    in_chans: int,
    stages: Sequence[Stage],
    *,
    shortcut: ShortcutSpec | ShortcutFactory,
    **block_options: Any,
) -> tuple[nn.Sequential, int]:
    """``nn.Sequential`` of per-stage ``nn.Sequential`` blocks, and the channel count they end with."""
    make_shortcut = as_factory(shortcut)  # checks the name and options once, not per block
    total, index, seqs = sum(s.depth for s in stages), 0, []
    for stage in stages:
        blocks, first = [], index
        for j in range(stage.depth):
            blocks.append(
                block(
                    in_chans,
                    stage.width,
                    stride=stage.stride if j == 0 else 1,
                    shortcut=make_shortcut,
                    index=index,
                    total=total,
                    **block_options,
                )
            )
            in_chans = blocks[-1].branch.out_chans
            blocks[-1].stage_start = first  # LAuReL-PA mixes only this stage's activations (a static bound)
            index += 1
        seqs.append(nn.Sequential(*blocks))
    return nn.Sequential(*seqs), in_chans


# The options every residual CNN builder hands to each of its blocks, unchanged (see ConvBlock's Args).
BLOCK_OPTIONS = ("shortcut", "downsample", "zero_init_last", "drop_path_rate", "layer_scale_init")
# The head's options (timm's ``global_pool`` and ``drop_rate``), handed to the network shell unchanged.
HEAD_OPTIONS = ("global_pool", "head_drop_rate")


def block_options(options: dict[str, Any]) -> dict[str, Any]:
    """The shared block and head options among a builder's arguments (its ``locals()``): written out once, here."""
    return {k: options[k] for k in BLOCK_OPTIONS + HEAD_OPTIONS if k in options}


def make_stem(in_chans: int, width: int, kind: StemKind, *, norm_layer: str | NormFactory | None) -> nn.Sequential:
    """CIFAR: conv3x3 (He et al. 2016, Sec. 4.2); ImageNet: conv7x7/2 + maxpool3x3/2 (torchvision's ``conv1``, ``bn1``).

    ``norm_layer=None`` leaves out BN-ReLU after the conv: pre-activation nets start with a bare conv
    and let the first block pre-activate it.
    """
    check(kind in ("cifar", "imagenet"), "stem", f"unknown kind {kind!r}; valid: cifar, imagenet")
    if kind == "cifar":
        conv = conv3x3(in_chans, width)
    else:
        conv = nn.Conv2d(in_chans, width, 7, stride=2, padding=3, bias=False)
    layers: list[tuple[str, nn.Module]] = [("conv1", conv)]
    if norm_layer is not None:
        layers += [("bn1", image_norm(norm_layer)(width)), ("act1", nn.ReLU())]
    if kind == "imagenet":
        layers.append(("maxpool", nn.MaxPool2d(3, stride=2, padding=1)))
    stem = nn.Sequential(OrderedDict(layers))
    init_conv_bn_(stem)
    return stem


class ResidualCNN(ClassifierMixin, nn.Module):
    """stem -> stages -> final -> pool -> fc; the blocks are run one by one, with ``hiddens`` for LAuReL-PA.

    ``block`` is a ``BLOCKS`` name (``basic``, ``bottleneck``, ``preact_basic``, ``preact_bottleneck``);
    ``block_options`` go to every block (``downsample``, ``zero_init_last``, ``groups``, ...).
    Pre-activation blocks get a bare-conv stem and a final BN-ReLU before pooling (arXiv 1603.05027).

    Args:
        block: the block's registry name.
        stages: the :class:`Stage` list (depth, width, stride of each).
        num_classes: classes of the linear head (0: none, ``forward`` returns the pooled features);
            in_chans: input channels.
        stem: ``cifar`` (3x3 conv) or ``imagenet`` (7x7/2 conv + max-pool); stem_width: its channels.
        shortcut: the rule of every block: a name, ``{"name": ..., **options}`` or a factory.
        norm_layer: ``batchnorm`` or a factory ``chans -> nn.Module``.
        global_pool: ``avg``, ``max`` or ``""`` (no pooling); head_drop_rate: dropout before the classifier
            (timm's ``drop_rate``).
        block_options: passed to every block (:class:`~resblocks.blocks.conv.ConvBlock`'s Args: ``downsample``,
            ``zero_init_last``, ``drop_path_rate``, ``layer_scale_init``, ``drop_rate``, ``groups``, ...).

    The timm interface (:mod:`resblocks.models._interface`): ``forward_features`` is the last feature map
    ``[B, num_features, h, w]``, ``feature_info`` lists the stem and each stage.
    """

    def __init__(
        self,
        block: str,
        stages: Sequence[Stage],
        *,
        num_classes: int,
        in_chans: int = 3,
        stem: StemKind = "cifar",
        stem_width: int = 16,
        shortcut: ShortcutSpec | ShortcutFactory = "identity",
        norm_layer: str | NormFactory = nn.BatchNorm2d,
        global_pool: str = "avg",
        head_drop_rate: float = 0.0,
        **block_options: Any,
    ) -> None:
        super().__init__()
        check(in_chans >= 1, "in_chans", f"{in_chans}; valid: an integer >= 1")
        self.in_chans = in_chans
        block_cls = BLOCKS.get(block)
        preact = block_cls.preact  # pre-act nets: bare-conv stem, final BN-ReLU
        self.stem = make_stem(in_chans, stem_width, stem, norm_layer=None if preact else norm_layer)
        self.stages, self.num_features = build_stages(
            block_cls,
            stem_width,
            stages,
            shortcut=shortcut,
            norm_layer=norm_layer,
            **block_options,
        )
        self.final = norm_act(self.num_features, norm_layer, nn.ReLU) if preact else nn.Identity()
        # pool -> head_drop -> fc, torch's default Linear init as torchvision
        self.init_head(self.num_features, num_classes, global_pool=global_pool, head_drop_rate=head_drop_rate)
        self.reads_previous = any(m.shortcut.num_previous for m in self.modules() if isinstance(m, Residual))
        self.feature_info = self._feature_info(stem, stem_width, stages)

    def _feature_info(self, stem: StemKind, stem_width: int, stages: Sequence[Stage]) -> list[dict[str, Any]]:
        """timm's ``feature_info``: the stem's output (before an ImageNet stem's max-pool), then each stage's."""
        names = list(self.stem._modules)
        stem_module = "stem" if "maxpool" not in names else f"stem.{names[names.index('maxpool') - 1]}"
        reduction = 1 if stem == "cifar" else 2
        info = [dict(num_chs=stem_width, reduction=reduction, module=stem_module)]
        reduction *= 1 if stem == "cifar" else 2  # the max-pool
        for i, (spec, stage) in enumerate(zip(stages, self.stages)):
            reduction *= spec.stride
            last = f"stages.{i}.{len(stage) - 1}"  # the stage's last block: its output is the stage's
            info.append(dict(num_chs=stage[-1].branch.out_chans, reduction=reduction, module=last))
        return info

    @torch.no_grad()
    def init_weights(self) -> None:
        """The library's whole init again, in order: He init for convs and norms at (1, 0) (torchvision),
        the head's torch default, zero last layers where ``zero_init_last``, then every residual's own
        (:meth:`Residual.init_weights`: its rule's parameters, modifiers, the rule's branch init).

        For users who re-initialise a built model (timm's ``ResNet.init_weights()``); the constructor
        already leaves the model in this state.
        """
        rules = {id(m) for r in self.modules() if isinstance(r, Residual) for m in r.own_modules()}
        own = [m for m in self.modules() if id(m) not in rules]
        for m in own:
            if isinstance(m, (nn.Conv2d, nn.modules.batchnorm._BatchNorm, nn.GroupNorm)):
                init_conv_bn_(m)
            elif isinstance(m, nn.Linear):
                m.reset_parameters()
        for m in own:
            if getattr(m, "zero_init_last", False) and hasattr(m, "output_layer"):
                zero_output_(m)
        for m in self.modules():
            if isinstance(m, Residual):
                m.init_weights()

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The last feature map ``[B, num_features, h, w]`` (for probes and effective-rank statistics)."""
        x = self.stem(x)
        # A new record per forward for rules that read earlier activations (LAuReL-PA); None otherwise.
        hiddens: Hiddens | None = {} if self.reads_previous else None
        for stage in self.stages:
            for block in stage:
                x = block(x, hiddens=hiddens)
        return self.final(x)

    def forward_intermediates(
        self,
        x: torch.Tensor,
        indices: Indices = None,
        norm: bool = False,
        stop_early: bool = False,
        output_fmt: str = "NCHW",
        intermediates_only: bool = False,
    ) -> list[torch.Tensor] | tuple[torch.Tensor, list[torch.Tensor]]:
        """timm's ``forward_intermediates``: the features listed in ``feature_info`` (``indices``: all if None,
        the last n if an int), and ``forward_features``' output unless ``intermediates_only``. ``norm=True``
        passes the last stage's output through the pre-activation nets' final BN-ReLU."""
        check(output_fmt == "NCHW", "output_fmt", f"{output_fmt!r}; valid: NCHW")
        take, max_index = take_indices(len(self.feature_info), indices)
        intermediates = []
        feat = None
        for name, layer in self.stem.named_children():
            if name == "maxpool":
                feat = x  # the stem's feature is the map before the max-pool (timm's ``act1``)
            x = layer(x)
        if 0 in take:
            intermediates.append(x if feat is None else feat)
        hiddens: Hiddens | None = {} if self.reads_previous else None
        last = len(self.stages)
        stages = self.stages[:max_index] if stop_early else self.stages
        i = 0
        for i, stage in enumerate(stages, start=1):
            for block in stage:
                x = block(x, hiddens=hiddens)
            if i in take:
                intermediates.append(self.final(x) if norm and i == last else x)
        if intermediates_only:
            return intermediates
        return (self.final(x) if i == last else x), intermediates

    def prune_intermediate_layers(
        self, indices: Indices = 1, prune_norm: bool = False, prune_head: bool = True
    ) -> list[int]:
        """Drop the stages after the last feature ``indices`` asks for (timm's ``FeatureGetterNet`` calls this)."""
        take, max_index = take_indices(len(self.feature_info), indices)
        for i in range(max_index, len(self.stages)):
            self.stages[i] = nn.Sequential()
        if max_index == 0 and hasattr(self.stem, "maxpool"):
            self.stem.maxpool = nn.Identity()
        if prune_norm or max_index < len(self.stages):
            self.final = nn.Identity()
        if max_index < len(self.stages):
            self.num_features = self.head_hidden_size = self.feature_info[max_index]["num_chs"]
        if prune_head or max_index < len(self.stages):
            self.reset_classifier(0, "")
        return take

    def group_matcher(self, coarse: bool = False) -> dict[str, Any]:
        """Parameter groups for layer-wise learning-rate decay (timm): the stem, then stages or blocks."""
        blocks = r"^stages\.(\d+)" if coarse else r"^stages\.(\d+)\.(\d+)"
        return {"stem": r"^stem", "blocks": [(blocks, None), (r"^final", (99999,))]}


__all__ = [
    "BLOCK_OPTIONS",
    "ResidualCNN",
    "block_options",
    "Stage",
    "blocks_per_stage",
    "doubling_stages",
    "build_stages",
    "make_stem",
]
