"""LightningModules for the recipes; each takes an already-built network and plain optimiser settings.

Use them without Hydra in your own project::

    import lightning as L, resblocks
    from recipes.modules import ImageClassifier, OptimizerSettings, ScheduleSettings

    net = resblocks.build_model("cifar_resnet20", num_classes=10, shortcut="laurel_rw")
    module = ImageClassifier(net, num_classes=10,
                             optim=OptimizerSettings(name="sgd", lr=0.1, weight_decay=1e-4),
                             sched=ScheduleSettings(name="multistep", milestones=[32000, 48000]))
    L.Trainer(max_steps=64000).fit(module, datamodule)

Importing this package is cheap; the module classes import Lightning (~5 s) on first access, so
``recipes.modules.optim`` (used by the config schema) stays light.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .optim import OptimizerSettings, ScheduleSettings, configure_optimizers, lr_at, param_groups

if TYPE_CHECKING:  # pragma: no cover
    from .base import ResidualTaskModule
    from .classification import ClassificationModule
    from .image_classification import ImageClassifier
    from .language_model import CausalLM
    from .text_classification import TextClassifier

_LAZY = {
    "ResidualTaskModule": "base",
    "ClassificationModule": "classification",
    "ImageClassifier": "image_classification",
    "CausalLM": "language_model",
    "TextClassifier": "text_classification",
}

__all__ = [
    "CausalLM",
    "ClassificationModule",
    "ImageClassifier",
    "OptimizerSettings",
    "ResidualTaskModule",
    "ScheduleSettings",
    "TextClassifier",
    "configure_optimizers",
    "lr_at",
    "param_groups",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
