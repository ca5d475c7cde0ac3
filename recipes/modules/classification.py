"""Classification: cross-entropy (with optional label smoothing) and accuracy via torchmetrics."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torchmetrics.classification import MulticlassAccuracy

from ..data.resume import batches_done_in_epoch
from .base import NetOrFactory, ResidualTaskModule
from .optim import OptimizerSettings, ScheduleSettings

STAGES = ("train", "val", "test")
TRAIN_METRICS_KEY = "train_metric_states"  # checkpoint entry: the epoch's train accumulators, mid-epoch


class ClassificationModule(ResidualTaskModule):
    """Base of the classifiers: subclasses say how a batch splits into ``(net inputs, labels)``.

    Logs ``{stage}/loss`` and ``{stage}/acc`` (top-1), plus ``{stage}/acc5`` when ``top5``. A checkpoint
    taken mid-epoch holds the epoch's train accumulators, so a run resumed from it logs the epoch's
    ``train/acc`` over all of the epoch's batches.

    Args:
        num_classes: number of classes; ``None`` takes the DataModule's ``num_classes`` at ``setup``
            (for datasets whose classes are only known once read, e.g. an imagefolder).
        label_smoothing: cross-entropy label smoothing (Szegedy et al. 2016, arXiv 1512.00567, §7).
        top5: also log top-5 accuracy (default: when there are at least 100 classes).
    """

    def __init__(
        self,
        net: NetOrFactory,
        num_classes: int | None = None,
        optim: OptimizerSettings | None = None,
        sched: ScheduleSettings | None = None,
        label_smoothing: float = 0.0,
        top5: bool | None = None,
    ) -> None:
        super().__init__(net, optim, sched)
        self.criterion = nn.CrossEntropyLoss(label_smoothing=label_smoothing)
        self.num_classes, self._top5 = num_classes, top5
        self.metrics = nn.ModuleDict()
        if num_classes is not None:
            self._make_metrics(num_classes)

    def _make_metrics(self, num_classes: int) -> None:
        self.num_classes = num_classes
        top5 = num_classes >= 100 if self._top5 is None else self._top5
        # Keys are prefixed: "train" would clash with nn.Module.train inside a ModuleDict.
        metrics = {f"{s}_acc": MulticlassAccuracy(num_classes, average="micro") for s in STAGES}
        if top5:
            metrics |= {f"{s}_acc5": MulticlassAccuracy(num_classes, top_k=5, average="micro") for s in STAGES}
        self.metrics.update(metrics)

    def setup(self, stage: str) -> None:
        if self.num_classes is None:
            datamodule = getattr(self.trainer, "datamodule", None)
            if datamodule is None or not getattr(datamodule, "num_classes", None):
                raise ValueError(
                    f"{type(self).__name__}: pass num_classes= (no DataModule with num_classes to take it from)"
                )
            self._make_metrics(datamodule.num_classes)

    def split_batch(self, batch: Any) -> tuple[tuple[torch.Tensor, ...], torch.Tensor]:
        raise NotImplementedError

    def _step(self, batch: Any, stage: str) -> torch.Tensor:
        inputs, labels = self.split_batch(batch)
        logits = self.net(*inputs)
        loss = self.criterion(logits, labels)
        train = stage == "train"
        n = labels.shape[0]
        if not train or self.logs_this_step():
            self.log(f"{stage}/loss", loss, on_step=train, on_epoch=not train, prog_bar=True, batch_size=n,
                     sync_dist=not train)  # fmt: skip
        for name, metric in self.metrics.items():
            if name.startswith(f"{stage}_"):
                metric(logits, labels)
                self.log(
                    f"{stage}/{name.split('_', 1)[1]}",
                    metric,
                    on_step=False,
                    on_epoch=True,
                    prog_bar=name == f"{stage}_acc",
                    batch_size=n,
                )
        return loss

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if self._trainer is None or not batches_done_in_epoch(self.trainer):
            return  # at an epoch's end the accumulators hold a finished epoch: a resume starts afresh
        states = {}
        for name, metric in self.metrics.items():
            if name.startswith("train_"):
                # Summed over DDP ranks (Lightning calls this hook on every rank, so a collective is safe);
                # the resumed rank 0 takes the sum, the other ranks start from zero: the epoch's sync adds up.
                with metric.sync_context():
                    state = {k: v.detach().cpu().clone() for k, v in metric.metric_state.items()}
                states[name] = {"state": state, "updates": metric._update_count}
        checkpoint[TRAIN_METRICS_KEY] = states

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_load_checkpoint(checkpoint)
        if self.global_rank != 0:
            return
        for name, saved in checkpoint.get(TRAIN_METRICS_KEY, {}).items():
            if name not in self.metrics:  # load_from_checkpoint with num_classes=None: they come at setup
                continue
            metric = self.metrics[name]
            for key, value in saved["state"].items():
                setattr(metric, key, value.to(metric.device))
            metric._update_count = int(saved["updates"])

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        return self._step(batch, "train")

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        self._step(batch, "val")

    def test_step(self, batch: Any, batch_idx: int) -> None:
        self._step(batch, "test")
