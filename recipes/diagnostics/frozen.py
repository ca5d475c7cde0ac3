"""Frozen-feature evaluation while training and of a checkpoint: kNN and linear-probe accuracy
(:mod:`resblocks.diagnostics.frozen_features`) of any image network with the timm interface (an MAE's
encoder, a ViT, a ResNet), the DataModule's train split as memory and its test split as queries."""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
import torch
from torch import nn
from torch.utils.data import DataLoader, Subset

from resblocks.diagnostics import extract_features, knn_accuracy, linear_probe_accuracy

METRICS = ("frozen/knn_acc", "frozen/linear_acc")
FEATURE_BATCH = 512


def frozen_metrics(
    net: nn.Module,
    datamodule: Any,
    *,
    k: int = 20,
    temperature: float = 0.07,
    knn: bool = True,
    linear_probe: bool = True,
    max_memory: int | None = None,
    device: torch.device | str = "cpu",
    autocast: Any = None,
) -> dict[str, float]:
    """``{"frozen/knn_acc": ..., "frozen/linear_acc": ...}`` (those asked for by ``knn`` / ``linear_probe``) of
    ``net``'s pooled features (eval mode, no masking).

    ``datamodule``: an image DataModule after ``setup`` (its ``train_set`` is the memory, ``test_set`` the
    queries, both normalised as for evaluation, never augmented); ``max_memory``: the first that many train
    images only (quick runs).
    """
    memory_set, query_set = datamodule.train_set, datamodule.test_set
    if max_memory is not None and max_memory < len(memory_set):
        memory_set = Subset(memory_set, range(max_memory))

    def features(dataset: Any) -> tuple[torch.Tensor, torch.Tensor]:
        loader = DataLoader(dataset, batch_size=FEATURE_BATCH, shuffle=False)
        return extract_features(
            net, loader, transform=lambda x: datamodule.transform_batch((x, None), train=False)[0], device=device,
            autocast=autocast,
        )  # fmt: skip

    (memory, memory_labels), (queries, query_labels) = features(memory_set), features(query_set)
    classes = getattr(datamodule, "num_classes", None) or None
    out = {}
    if knn:
        out["frozen/knn_acc"] = knn_accuracy(memory, memory_labels, queries, query_labels, k=min(k, len(memory)),
                                             temperature=temperature, num_classes=classes)  # fmt: skip
    if linear_probe:
        out["frozen/linear_acc"] = linear_probe_accuracy(memory, memory_labels, queries, query_labels,
                                                         num_classes=classes)  # fmt: skip
    return out


class FrozenFeatureEval(pl.Callback):
    """Logs :data:`METRICS` after every ``every_n_epochs``-th epoch's validation and after the last one.

    A pass costs one forward of the train and test splits plus the kNN vote and the probe's fit
    (Fashion-MNIST, the ``mae_fmnist`` encoder, 2-core CPU: about half a minute); the metrics join the
    validation's, so they reach the loggers, ``summary.json`` and study reports like ``val/loss``.
    """

    def __init__(
        self,
        every_n_epochs: int,
        *,
        k: int = 20,
        temperature: float = 0.07,
        linear_probe: bool = True,
        max_memory: int | None = None,
    ) -> None:
        self.every_n_epochs, self.k, self.temperature = every_n_epochs, k, temperature
        self.linear_probe, self.max_memory = linear_probe, max_memory
        self._evaluated: set[tuple[int, int]] = set()  # (epoch, step) already evaluated

    def due(self, trainer: pl.Trainer) -> bool:
        """At most once per epoch: in every ``every_n_epochs``-th one (at its first validation, the epoch's
        end with the default schedule), at the last step, and in a validation outside fitting (final weights)."""
        if trainer.sanity_checking:
            return False
        if trainer.state.fn != "fit":  # a standalone trainer.validate() after fitting: the final weights
            return (trainer.current_epoch, trainer.global_step) not in self._evaluated
        if trainer.max_steps not in (None, -1) and trainer.global_step >= trainer.max_steps:
            return True
        if trainer.max_epochs not in (None, -1) and trainer.current_epoch + 1 >= trainer.max_epochs:
            return trainer.current_epoch not in {e for e, _ in self._evaluated}
        return (trainer.current_epoch + 1) % self.every_n_epochs == 0 and trainer.current_epoch not in {
            e for e, _ in self._evaluated
        }

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not self.due(trainer):
            return
        self._evaluated.add((trainer.current_epoch, trainer.global_step))
        with torch.inference_mode(False), torch.no_grad():
            metrics = frozen_metrics(
                pl_module.net, trainer.datamodule, k=self.k, temperature=self.temperature,
                linear_probe=self.linear_probe, max_memory=self.max_memory, device=pl_module.device,
                autocast=trainer.precision_plugin.forward_context,
            )  # fmt: skip
        for name, value in metrics.items():
            pl_module.log(name, value, sync_dist=False)  # every rank computes the same from the same data


__all__ = ["METRICS", "FEATURE_BATCH", "FrozenFeatureEval", "frozen_metrics"]
