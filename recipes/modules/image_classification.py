"""Image classification: batches ``(images [B,C,H,W] float, labels [B])``."""

from __future__ import annotations

from typing import Any

import torch

from .base import NetOrFactory
from .classification import ClassificationModule
from .optim import OptimizerSettings, ScheduleSettings


class ImageClassifier(ClassificationModule):
    """``net(images) -> logits``; see :class:`~recipes.modules.classification.ClassificationModule`.

    ``channels_last``: keep the network's conv kernels and the image batches in NHWC memory format
    (faster convs with oneDNN and cuDNN); the ``state_dict`` and checkpoints do not depend on it.

    >>> module = ImageClassifier(resblocks.build_model("cifar_resnet20", num_classes=10), num_classes=10)
    """

    def __init__(
        self,
        net: NetOrFactory,
        num_classes: int | None = None,
        optim: OptimizerSettings | None = None,
        sched: ScheduleSettings | None = None,
        label_smoothing: float = 0.0,
        top5: bool | None = None,
        channels_last: bool = False,
    ) -> None:
        super().__init__(net, num_classes, optim, sched, label_smoothing, top5)
        self.channels_last = channels_last

    def configure_model(self) -> None:
        super().configure_model()
        if self.channels_last and self.net is not None:
            self.net.to(memory_format=torch.channels_last)  # 4-D parameters only; the rest are untouched

    def split_batch(self, batch: Any) -> tuple[tuple[torch.Tensor, ...], torch.Tensor]:
        images, labels = batch
        if self.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        return (images,), labels
