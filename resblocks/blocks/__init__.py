"""Residual blocks: a branch, a norm placement and a shortcut rule, composed.

``BLOCKS`` maps names (``transformer``, ``basic``, ``bottleneck``, ``preact_basic``, ...) to block
constructors; every module in this package registers its blocks on import.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable

from torch import nn

from ..registry import Registry

BLOCKS: Registry[Callable[..., nn.Module]] = Registry("block")


def _register_all() -> None:
    for mod in pkgutil.iter_modules(__path__):
        if not mod.name.startswith("_"):
            importlib.import_module(f"{__name__}.{mod.name}")


_register_all()

__all__ = ["BLOCKS"]
