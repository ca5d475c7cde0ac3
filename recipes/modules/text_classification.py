"""Text classification: batches ``(ids [B,T], pad_mask [B,T] bool, labels [B])``, True = padding."""

from __future__ import annotations

from typing import Any

import torch

from .classification import ClassificationModule


class TextClassifier(ClassificationModule):
    """``net(ids, pad_mask) -> logits``; see :class:`~recipes.modules.classification.ClassificationModule`."""

    def split_batch(self, batch: Any) -> tuple[tuple[torch.Tensor, ...], torch.Tensor]:
        ids, pad_mask, labels = batch
        return (ids, pad_mask), labels

    def batch_tokens(self, batch: Any) -> int | None:
        return batch[0].numel()  # padded positions included: counting them would need a host sync
