"""Named models as variants of a generic builder: ``resnet50`` = ``resnet(layers=(3, 4, 6, 3), ...)``."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from torch import nn

from ..errors import ConfigError
from . import MODELS


def register_variant(
    name: str,
    builder: Callable[..., nn.Module],
    doc: str,
    *,
    defaults: dict[str, Any] | None = None,
    **pinned: Any,
) -> Callable[..., nn.Module]:
    """Register ``name`` as ``builder`` with some options ``pinned`` and others given new ``defaults``.

    Pinned options define the architecture (``depth=56`` for ``cifar_resnet56``): they leave the
    variant's signature, so ``MODELS.options(name)`` lists exactly what a user may still set, and
    setting one is a ConfigError that points to the generic builder. ``defaults`` only change the
    default (``gpt_nano``'s width), and stay overridable.
    """
    defaults = defaults or {}
    sig = inspect.signature(builder)

    def variant(**options: Any) -> nn.Module:
        for key in options.keys() & pinned.keys():
            raise ConfigError(f"{key}: fixed to {pinned[key]!r} by {name!r}; valid: use {builder.__name__!r} to change it")
        return builder(**pinned, **{**defaults, **options})

    params = [
        p.replace(default=defaults[p.name]) if p.name in defaults else p
        for p in sig.parameters.values()
        if p.name not in pinned
    ]
    variant.__signature__ = sig.replace(parameters=params)  # type: ignore[attr-defined]
    variant.__name__ = variant.__qualname__ = name
    variant.__module__ = builder.__module__
    variant.builder, variant.pinned = builder, dict(pinned)  # type: ignore[attr-defined]  # for listings and tests
    variant.__doc__ = doc
    return MODELS.register(name)(variant)
