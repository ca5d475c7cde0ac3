"""resblocks: pluggable residual blocks in pure PyTorch.

Three independent choices, each by registry name:

* the **branch** F (attention, MLP, basic / bottleneck / pre-activation conv),
* the **norm placement** for Transformers (``post_ln``, ``pre_ln``, ``peri_ln``, ...),
* the **shortcut rule** merging F(x) and x (``identity``, ``none``, ``decayed``, ``laurel_rw``, ...).

>>> import resblocks
>>> model = resblocks.build_model("cifar_resnet20", shortcut="laurel_rw", num_classes=10)

Per-depth diagnostics of any such model: :class:`resblocks.diagnostics.ResidualProbe`.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from .blocks import BLOCKS
from .blocks.residual import NORM_PLACEMENTS, Residual, norm_slots
from .errors import ConfigError
from .models import MODELS
from .norms import NORMS
from .modifiers import LayerScale, branch_output
from .shortcuts import SHORTCUTS, Hiddens, Shortcut, Site, shortcut_factory
from .diagnostics import ResidualProbe
from .integrations import register_with_timm

__version__ = "0.1.0"

register_with_timm()  # timm.create_model("resblocks_<name>") once timm is imported; timm itself is not imported here


def build_model(name: str, **options: Any) -> nn.Module:
    """Build a registered model; unknown names or options raise a one-line :class:`ConfigError`."""
    return MODELS.build(name, **options)


def build_block(name: str, *args: Any, **options: Any) -> nn.Module:
    """Build a registered block (``transformer``, ``basic``, ``bottleneck``, ...) by name."""
    return BLOCKS.build(name, *args, **options)


def list_blocks() -> list[str]:
    return BLOCKS.names()


def list_models() -> list[str]:
    return MODELS.names()


def list_shortcuts() -> list[str]:
    return SHORTCUTS.names()


__all__ = [
    "BLOCKS",
    "ConfigError",
    "Hiddens",
    "LayerScale",
    "MODELS",
    "NORMS",
    "NORM_PLACEMENTS",
    "Residual",
    "ResidualProbe",
    "SHORTCUTS",
    "Shortcut",
    "Site",
    "branch_output",
    "build_block",
    "build_model",
    "diagnostics",
    "list_blocks",
    "list_models",
    "list_shortcuts",
    "norm_slots",
    "shortcut_factory",
]
