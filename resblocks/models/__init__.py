"""Model builders, registered by name: ``build_model("cifar_resnet20", shortcut="laurel_rw")``.

Each builder takes the branch / norm placement / shortcut choices by name and gives every residual
sub-layer a :class:`~resblocks.shortcuts.Site` with its depth index and the network's total depth.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable

from torch import nn

from ..registry import Registry

MODELS: Registry[Callable[..., nn.Module]] = Registry("model")


def _register_all() -> None:
    # Each family module registers its builders on import (one family per small file).
    for mod in pkgutil.iter_modules(__path__):
        if not mod.name.startswith("_"):
            importlib.import_module(f"{__name__}.{mod.name}")


_register_all()

__all__ = ["MODELS"]
