"""DenseNet-BC (Huang et al. 2017, "Densely Connected Convolutional Networks", arXiv 1608.06993).

The concatenation counterpoint to residual nets: a dense block *concatenates* each layer's k new
feature maps to its input, ``x_l = H_l([x_0, ..., x_{l-1}])`` (eq. 2), instead of adding a branch to
the stream, so there is **no residual shortcut and no shortcut rule**: the builders accept
``shortcut=None`` only, which keeps the builder interface uniform for recipes. H is the BC
bottleneck BN-ReLU-conv1x1(4k)-BN-ReLU-conv3x3(k); transitions are BN-ReLU-conv1x1(compression)-
avgpool2x2; a final BN-ReLU precedes global pooling. Module names
follow torchvision (``features.denseblock1.denselayer1.norm1``, ``classifier``), so its weights load
as they are. Convs use He init (fan_out, as the Torch DenseNet code; torchvision draws fan_in).

CIFAR DenseNet-BC-100 (k=12) has 0.8M parameters (Table 2); ``densenet121`` 7,978,856 (torchvision).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from typing import Any, Literal

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from ..branches.conv import conv1x1, conv3x3, init_conv_bn_
from ..errors import check
from . import MODELS
from ._cnn import blocks_per_stage
from ._interface import ClassifierMixin, Indices, take_indices
from ._variants import register_variant


class DenseLayer(nn.Module):
    """``H_l``: BN-ReLU-conv1x1(``bn_size * k``)-BN-ReLU-conv3x3(``k``), optional dropout; returns the k new maps."""

    def __init__(self, in_chans: int, growth_rate: int, bn_size: int, drop_rate: float) -> None:
        super().__init__()
        self.norm1 = nn.BatchNorm2d(in_chans)
        self.relu1 = nn.ReLU()
        self.conv1 = conv1x1(in_chans, bn_size * growth_rate)
        self.norm2 = nn.BatchNorm2d(bn_size * growth_rate)
        self.relu2 = nn.ReLU()
        self.conv2 = conv3x3(bn_size * growth_rate, growth_rate)
        self.drop = nn.Dropout(drop_rate) if drop_rate > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv1(self.relu1(self.norm1(x)))
        return self.drop(self.conv2(self.relu2(self.norm2(x))))


class DenseBlock(nn.Sequential):
    """``x <- cat([x, H_l(x)])`` for each layer: ``in_chans + num_layers * k`` channels out.

    ``grad_checkpointing = True`` recomputes each ``H_l`` in the backward (non-reentrant checkpoint;
    torchvision's ``memory_efficient``).
    """

    grad_checkpointing: bool = False

    def __init__(self, num_layers: int, in_chans: int, growth_rate: int, bn_size: int, drop_rate: float) -> None:
        super().__init__(
            OrderedDict(
                (f"denselayer{i + 1}", DenseLayer(in_chans + i * growth_rate, growth_rate, bn_size, drop_rate))
                for i in range(num_layers)
            )
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ckpt = self.grad_checkpointing and torch.is_grad_enabled()
        for layer in self:
            x = torch.cat([x, checkpoint(layer, x, use_reentrant=False) if ckpt else layer(x)], 1)
        return x


def transition(in_chans: int, out_chans: int) -> nn.Sequential:
    return nn.Sequential(
        OrderedDict(
            norm=nn.BatchNorm2d(in_chans), relu=nn.ReLU(), conv=conv1x1(in_chans, out_chans), pool=nn.AvgPool2d(2, 2)
        )
    )


class DenseNet(ClassifierMixin, nn.Module):
    """features (stem, dense blocks, transitions, norm5) -> ReLU -> global average pool -> classifier.

    The timm interface (:mod:`resblocks.models._interface`): ``forward_features`` is ``ReLU(norm5(.))``'s map,
    ``feature_info`` lists the stem and each dense block; ``global_pool`` and ``head_drop_rate`` (timm's
    ``drop_rate``; ``drop_rate`` here is torchvision's dropout after every dense layer) shape the head.
    """

    classifier_name = "classifier"

    def __init__(
        self,
        block_config: Sequence[int],
        *,
        num_classes: int,
        growth_rate: int,
        num_init_features: int,
        bn_size: int = 4,
        compression: float = 0.5,
        drop_rate: float = 0.0,
        stem: Literal["cifar", "imagenet"] = "cifar",
        in_chans: int = 3,
        global_pool: str = "avg",
        head_drop_rate: float = 0.0,
    ) -> None:
        super().__init__()
        check(0.0 < compression <= 1.0, "compression", f"{compression}; valid: (0, 1]")
        check(stem in ("cifar", "imagenet"), "stem", f"unknown kind {stem!r}; valid: cifar, imagenet")
        if (
            stem == "cifar"
        ):  # a bare 3x3 conv: the first dense layer pre-activates it (Sec. 3, "Implementation Details")
            layers: list[tuple[str, nn.Module]] = [("conv0", conv3x3(in_chans, num_init_features))]
        else:
            layers = [
                ("conv0", nn.Conv2d(in_chans, num_init_features, 7, stride=2, padding=3, bias=False)),
                ("norm0", nn.BatchNorm2d(num_init_features)),
                ("relu0", nn.ReLU()),
                ("pool0", nn.MaxPool2d(3, stride=2, padding=1)),
            ]
        chans, reduction = num_init_features, 1 if stem == "cifar" else 2
        # timm's feature_info: the stem's map (before an ImageNet stem's pool0), then each dense block's output
        stem_tap = "features.conv0" if stem == "cifar" else "features.relu0"
        self.feature_info = [dict(num_chs=chans, reduction=reduction, module=stem_tap)]
        reduction *= 1 if stem == "cifar" else 2  # pool0
        for i, num_layers in enumerate(block_config):
            layers.append((f"denseblock{i + 1}", DenseBlock(num_layers, chans, growth_rate, bn_size, drop_rate)))
            chans += num_layers * growth_rate
            tap = f"features.denseblock{i + 1}"
            self.feature_info.append(dict(num_chs=chans, reduction=reduction * 2**i, module=tap))
            if i < len(block_config) - 1:
                layers.append((f"transition{i + 1}", transition(chans, int(chans * compression))))
                chans = int(chans * compression)
        layers.append(("norm5", nn.BatchNorm2d(chans)))
        self.features = nn.Sequential(OrderedDict(layers))
        self.act = nn.ReLU()
        self.in_chans = in_chans
        self.init_head(chans, num_classes, global_pool=global_pool, head_drop_rate=head_drop_rate)
        init_conv_bn_(self.features)

    def _init_classifier(self, layer: nn.Linear) -> None:
        nn.init.zeros_(layer.bias)  # torchvision

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.features(x))

    def forward_intermediates(
        self,
        x: torch.Tensor,
        indices: Indices = None,
        norm: bool = False,
        stop_early: bool = False,
        output_fmt: str = "NCHW",
        intermediates_only: bool = False,
    ) -> list[torch.Tensor] | tuple[torch.Tensor, list[torch.Tensor]]:
        """timm's ``forward_intermediates``: the stem's map and each dense block's output (``feature_info``),
        and ``forward_features``' output unless ``intermediates_only``; ``norm=True`` passes the last block's
        output through ``norm5`` and the ReLU."""
        check(output_fmt == "NCHW", "output_fmt", f"{output_fmt!r}; valid: NCHW")
        take, max_index = take_indices(len(self.feature_info), indices)
        taps = {fi["module"].removeprefix("features."): j for j, fi in enumerate(self.feature_info)}
        last, intermediates, finished = len(self.feature_info) - 1, [], True
        for name, layer in self.features.named_children():
            x = layer(x)
            j = taps.get(name)
            if j is not None and j in take:
                intermediates.append(self.act(self.features.norm5(x)) if norm and j == last else x)
            if stop_early and j == max_index and j < last:
                finished = False
                break
        if intermediates_only:
            return intermediates
        return (self.act(x) if finished else x), intermediates

    def prune_intermediate_layers(
        self, indices: Indices = 1, prune_norm: bool = False, prune_head: bool = True
    ) -> list[int]:
        """Drop what follows the last feature ``indices`` asks for (timm's ``FeatureGetterNet`` calls this)."""
        take, max_index = take_indices(len(self.feature_info), indices)
        last = len(self.feature_info) - 1
        names = list(self.features._modules)
        keep = names.index(self.feature_info[max_index]["module"].removeprefix("features."))
        for name in names[keep + 1 :]:
            if name != "norm5" or prune_norm or max_index < last:
                setattr(self.features, name, nn.Identity())
        if max_index < last:
            self.num_features = self.head_hidden_size = self.feature_info[max_index]["num_chs"]
        if prune_head or max_index < last:
            self.reset_classifier(0, "")
        return take

    def group_matcher(self, coarse: bool = False) -> dict[str, Any]:
        """Parameter groups (timm's DenseNet): the stem, then dense blocks with their transitions."""
        blocks: Any = (
            r"^features\.(?:denseblock|transition)(\d+)"
            if coarse
            else [(r"^features\.denseblock(\d+)\.denselayer(\d+)", None), (r"^features\.transition(\d+)", (99999,))]
        )
        return {"stem": r"^features\.(?:conv|norm|relu|pool)0", "blocks": blocks, "final": r"^features\.norm5"}


def _no_shortcut(shortcut: None) -> None:
    check(
        shortcut is None,
        "shortcut",
        f"{shortcut!r}: DenseNet concatenates features, it has no residual shortcut; valid: null",
    )


@MODELS.register("densenet")
def densenet(
    *,
    num_classes: int,
    block_config: Sequence[int] = (6, 12, 24, 16),
    growth_rate: int = 32,
    num_init_features: int = 64,
    bn_size: int = 4,
    compression: float = 0.5,
    drop_rate: float = 0.0,
    stem: Literal["cifar", "imagenet"] = "imagenet",
    in_chans: int = 3,
    shortcut: None = None,
    global_pool: str = "avg",
    head_drop_rate: float = 0.0,
) -> nn.Module:
    """DenseNet-BC with ``block_config`` layers per dense block. ``shortcut`` must be None: there is none."""
    _no_shortcut(shortcut)
    return DenseNet(
        block_config,
        num_classes=num_classes,
        growth_rate=growth_rate,
        num_init_features=num_init_features,
        bn_size=bn_size,
        compression=compression,
        drop_rate=drop_rate,
        stem=stem,
        in_chans=in_chans,
        global_pool=global_pool,
        head_drop_rate=head_drop_rate,
    )


@MODELS.register("densenet_bc")
def densenet_bc(
    *,
    num_classes: int,
    depth: int = 100,
    growth_rate: int = 12,
    drop_rate: float = 0.0,
    in_chans: int = 3,
    shortcut: None = None,
    global_pool: str = "avg",
    head_drop_rate: float = 0.0,
) -> nn.Module:
    """CIFAR DenseNet-BC-``depth`` (k = ``growth_rate``): three dense blocks of (depth-4)/6 layers, 2k stem filters.

    ``shortcut`` must be None: DenseNet has no residual shortcut.
    """
    n = blocks_per_stage(depth, per_block=2, extra=4)
    return densenet(
        num_classes=num_classes,
        block_config=(n, n, n),
        growth_rate=growth_rate,
        num_init_features=2 * growth_rate,
        drop_rate=drop_rate,
        stem="cifar",
        in_chans=in_chans,
        shortcut=shortcut,
        global_pool=global_pool,
        head_drop_rate=head_drop_rate,
    )


_D = "(arXiv 1608.06993"
densenet_bc_100_12 = register_variant(
    "densenet_bc_100_12",
    densenet_bc,
    f"CIFAR DenseNet-BC-100, k=12, 0.8M params {_D}, Table 2).",
    depth=100,
    growth_rate=12,
)
densenet_bc_250_24 = register_variant(
    "densenet_bc_250_24",
    densenet_bc,
    f"CIFAR DenseNet-BC-250, k=24, 15.3M params {_D}, Table 2).",
    depth=250,
    growth_rate=24,
)
densenet121 = register_variant(
    "densenet121",
    densenet,
    f"DenseNet-121, torchvision layout {_D}, Table 1).",
    block_config=(6, 12, 24, 16),
    growth_rate=32,
)
densenet169 = register_variant(
    "densenet169",
    densenet,
    f"DenseNet-169, torchvision layout {_D}, Table 1).",
    block_config=(6, 12, 32, 32),
    growth_rate=32,
)
densenet201 = register_variant(
    "densenet201",
    densenet,
    f"DenseNet-201, torchvision layout {_D}, Table 1).",
    block_config=(6, 12, 48, 32),
    growth_rate=32,
)
