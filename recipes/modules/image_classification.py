"""Image classification: batches ``(images [B,C,H,W] float, labels [B])``."""

from __future__ import annotations

from typing import Any

import torch

from .classification import ClassificationModule


class ImageClassifier(ClassificationModule):
    """``net(images) -> logits``; see :class:`~recipes.modules.classification.ClassificationModule`.

    >>> module = ImageClassifier(resblocks.build_model("cifar_resnet20", num_classes=10), num_classes=10)
    """

    def split_batch(self, batch: Any) -> tuple[tuple[torch.Tensor, ...], torch.Tensor]:
        images, labels = batch
        return (images,), labels
