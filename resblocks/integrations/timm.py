"""Expose every resblocks model in timm's registry as ``resblocks_<name>``.

>>> import resblocks.integrations.timm  # registers on import
>>> import timm
>>> model = timm.create_model("resblocks_cifar_resnet20", num_classes=10, shortcut="laurel_rw")

timm passes its own factory arguments (``pretrained``, ``pretrained_cfg``, ...); resblocks ships no
pretrained weights, so ``pretrained=True`` is refused. Everything else goes to the resblocks builder,
which rejects unknown options with the list of valid ones.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from timm.models import register_model
from torch import nn

from ..errors import ConfigError
from ..models import MODELS

PREFIX = "resblocks_"


def _entrypoint(name: str) -> Callable[..., nn.Module]:
    def create(
        pretrained: bool = False,
        pretrained_cfg: Any = None,
        pretrained_cfg_overlay: Any = None,
        cache_dir: Any = None,
        **kwargs: Any,
    ) -> nn.Module:
        if pretrained:
            raise ConfigError(f"pretrained: resblocks ships no pretrained weights for {PREFIX}{name}; use pretrained=False")
        return MODELS.build(name, **kwargs)

    create.__name__ = create.__qualname__ = PREFIX + name
    create.__module__ = __name__
    create.__doc__ = f"resblocks model {name!r} (see resblocks.MODELS)."
    return create


def register_timm_models() -> list[str]:
    """Register (or re-register) all resblocks models with timm; returns the timm names."""
    names = []
    for name in MODELS.names():
        fn = _entrypoint(name)
        globals()[fn.__name__] = fn  # timm looks the entrypoint up in its module
        register_model(fn)
        names.append(fn.__name__)
    return names


TIMM_NAMES = register_timm_models()
