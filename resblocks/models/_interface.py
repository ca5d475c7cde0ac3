"""The classifier interface every image model shares: timm's model API, in torch alone.

``forward_features`` (unpooled: a feature map ``[B, C, h, w]`` or ViT tokens ``[B, N, D]``) ->
``forward_head(x, pre_logits=False)`` (pool -> dropout -> linear), ``num_classes`` / ``num_features`` /
``head_hidden_size``, ``get_classifier`` / ``reset_classifier``, ``set_grad_checkpointing`` (non-reentrant
``torch.utils.checkpoint`` around every residual sub-layer), ``no_weight_decay`` and ``feature_info`` (the
list of ``{num_chs, reduction, module}`` that timm's ``FeatureInfo`` reads), with ``forward_intermediates``
and ``prune_intermediate_layers`` written per model. ``num_classes=0`` leaves the linear out (a feature
extractor returning the pooled ``[B, num_features]``), ``global_pool=""`` the pooling too.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import nn

from ..errors import ConfigError, check
from ..modifiers import LayerScale
from ..shortcuts import Shortcut

GLOBAL_POOLS = ("avg", "max", "")
Indices = int | list[int] | tuple[int, ...] | None  # timm's ``indices``: all (None), the last n (int), or these


def check_head(num_classes: int, head_drop_rate: float) -> None:
    valid = "valid: an integer >= 0 (0: no classifier)"
    check(isinstance(num_classes, int) and num_classes >= 0, "num_classes", f"{num_classes}; {valid}")
    check(0.0 <= head_drop_rate < 1.0, "head_drop_rate", f"{head_drop_rate}; valid: [0, 1)")


def image_pool(kind: str) -> nn.Module:
    """``avg``/``max``: global pooling to ``[B, C]``; ``""``: none (the head sees the feature map)."""
    check(kind in GLOBAL_POOLS, "global_pool", f"unknown {kind!r}; valid: avg, max, '' (none)")
    if kind == "":
        return nn.Identity()
    return nn.Sequential(nn.AdaptiveAvgPool2d(1) if kind == "avg" else nn.AdaptiveMaxPool2d(1), nn.Flatten(1))


def take_indices(num_features: int, indices: Indices) -> tuple[list[int], int]:
    """timm's ``feature_take_indices``: ``None`` all, an int the last n, a list those (negative from the end).

    ``forward_intermediates`` is timm's interface and uses timm's helper (imported on first use);
    without timm, torchvision's ``create_feature_extractor`` gives any intermediate feature.
    """
    try:
        from timm.models._features import feature_take_indices
    except ImportError as e:
        raise ConfigError(
            "forward_intermediates: needs timm (pip install timm); valid: torchvision's create_feature_extractor"
        ) from e
    return feature_take_indices(num_features, indices)


def residual_no_weight_decay(model: nn.Module) -> set[str]:
    """Full names of the residual scalars of every rule (its ``no_weight_decay()``) and of LayerScale."""
    names: set[str] = set()
    for prefix, m in model.named_modules():
        if isinstance(m, Shortcut):
            names.update(f"{prefix}.{n}" for n in m.no_weight_decay())
        elif isinstance(m, LayerScale):
            names.add(f"{prefix}.scale")
    return names


class ClassifierMixin:
    """The shared half of the interface; a model sets ``classifier_name`` and calls :meth:`init_head`.

    Subclasses provide ``_make_pool(kind)`` (the pooling module) and may override ``_init_classifier``
    (their head's init; torch's ``nn.Linear`` default otherwise).
    """

    classifier_name: ClassVar[str] = "fc"
    num_classes: int
    num_features: int
    head_hidden_size: int
    drop_rate: float
    global_pool: str

    def init_head(self, num_features: int, num_classes: int, *, global_pool: str, head_drop_rate: float) -> None:
        """``pool -> head_drop -> <classifier_name>``; a dropout of 0 is ``nn.Identity`` (the function stays
        exactly ``fc(pool(x))``)."""
        check_head(num_classes, head_drop_rate)
        self.num_features = self.head_hidden_size = num_features
        self.drop_rate = float(head_drop_rate)
        self.global_pool = global_pool
        self.pool = self._make_pool(global_pool)
        self.head_drop = nn.Dropout(head_drop_rate) if head_drop_rate > 0 else nn.Identity()
        self._set_classifier(num_classes)

    def _make_pool(self, kind: str) -> nn.Module:
        return image_pool(kind)

    def _init_classifier(self, layer: nn.Linear) -> None:
        """The model's own init of a new classifier (default: torch's ``nn.Linear`` init)."""

    def _set_classifier(self, num_classes: int, like: torch.Tensor | None = None) -> None:
        self.num_classes = num_classes
        if num_classes == 0:
            layer: nn.Module = nn.Identity()
        else:
            kw: dict[str, Any] = {} if like is None else {"device": like.device, "dtype": like.dtype}
            layer = nn.Linear(self.head_hidden_size, num_classes, **kw)
            self._init_classifier(layer)
        setattr(self, self.classifier_name, layer)

    def get_classifier(self, name_only: bool = False) -> nn.Module | str:
        return self.classifier_name if name_only else getattr(self, self.classifier_name)

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        """A new classifier for ``num_classes`` (0: none); ``global_pool`` changes the pooling (None keeps it)."""
        check_head(num_classes, self.drop_rate)
        like = next(iter(self.parameters()))  # type: ignore[attr-defined]
        if global_pool is not None:
            self.pool = self._make_pool(global_pool)
            self.global_pool = global_pool
        self._set_classifier(num_classes, like)
        getattr(self, self.classifier_name).train(self.training)  # type: ignore[attr-defined]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Images ``[B, C, H, W]`` -> logits ``[B, num_classes]`` (pooled features when ``num_classes=0``)."""
        return self.forward_head(self.forward_features(x))  # type: ignore[attr-defined]

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Unpooled features -> pooled ``[B, num_features]`` (``pre_logits=True``) or logits."""
        x = self.head_drop(self.pool(x))
        return x if pre_logits else getattr(self, self.classifier_name)(x)

    def _checkpointed(self) -> list[nn.Module]:
        """The modules that checkpoint themselves: every ``Residual`` (DenseNet: its dense blocks)."""
        modules = self.modules()  # type: ignore[attr-defined]
        return [m for m in modules if isinstance(getattr(type(m), "grad_checkpointing", None), bool)]

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Activation checkpointing around every residual sub-layer (non-reentrant, exact for every rule)."""
        for m in self._checkpointed():
            m.grad_checkpointing = enable

    @property
    def grad_checkpointing(self) -> bool:
        return any(m.grad_checkpointing for m in self._checkpointed())

    def no_weight_decay(self) -> set[str]:
        """Parameters to keep out of weight decay: the rules' residual scalars and LayerScale (full names)."""
        return residual_no_weight_decay(self)  # type: ignore[arg-type]


__all__ = ["GLOBAL_POOLS", "ClassifierMixin", "Indices", "check_head", "image_pool", "residual_no_weight_decay", "take_indices"]
