"""Masked image modelling (MAE pre-training): batches ``(images [B,C,H,W] float, labels [B])``, labels unused."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torchmetrics import MeanMetric

from .base import NetOrFactory, ResidualTaskModule
from .optim import OptimizerSettings, ScheduleSettings

EVAL_MASK_SEED = 1234  # validation and test draw the same masks every time, so their losses compare across steps


class MaskedImageModel(ResidualTaskModule):
    """``net(images) -> (loss, pred, mask)`` (:class:`resblocks.models.mae.MaskedAutoencoder`).

    Logs ``train/loss`` at the logging steps (:meth:`logs_this_step`) and ``{stage}/loss`` per validation/test
    pass (the reconstruction error of the masked patches, averaged over images by a torchmetrics
    ``MeanMetric``, exact under DDP). The evaluation masks come from a generator seeded the same way at every
    pass. After each validation, rank 0 writes a grid of the first images, masked and reconstructed, to
    ``<picture_dir>/reconstructions.png`` (and to W&B when that is the logger).

    Args:
        picture_dir: where the reconstruction grid goes (``None``: no picture).
        pictures: how many validation images the grid shows.
    """

    def __init__(
        self,
        net: NetOrFactory,
        optim: OptimizerSettings | None = None,
        sched: ScheduleSettings | None = None,
        picture_dir: str | Path | None = None,
        pictures: int = 8,
    ) -> None:
        super().__init__(net, optim, sched)
        self.picture_dir, self.pictures = (Path(picture_dir) if picture_dir else None), pictures
        self.val_loss, self.test_loss = MeanMetric(), MeanMetric()
        self._eval_generator: torch.Generator | None = None
        self._shown: torch.Tensor | None = None

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        loss = self.net(batch[0]).loss
        if self.logs_this_step():
            self.log("train/loss", loss, on_step=True, on_epoch=False, prog_bar=True, batch_size=batch[0].shape[0])
        return loss

    def _start_eval(self) -> None:
        self._eval_generator = torch.Generator(device=self.device).manual_seed(EVAL_MASK_SEED + self.global_rank)

    def on_validation_epoch_start(self) -> None:
        self._start_eval()
        self._shown = None

    def on_test_epoch_start(self) -> None:
        self._start_eval()

    def _eval_step(self, batch: tuple[torch.Tensor, torch.Tensor], metric: MeanMetric) -> Any:
        images = batch[0]
        out = self.net(images, generator=self._eval_generator)
        metric.update(out.loss, weight=images.shape[0])
        return out

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        out = self._eval_step(batch, self.val_loss)
        if batch_idx == 0 and self.picture_dir is not None:
            self._shown = self.reconstruction_grid(batch[0][: self.pictures], out.pred, out.mask)

    def test_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        self._eval_step(batch, self.test_loss)

    def on_validation_epoch_end(self) -> None:
        self.log("val/loss", self.val_loss.compute(), prog_bar=True, sync_dist=False)
        self.val_loss.reset()
        if self._shown is not None and self.global_rank == 0 and not self.trainer.sanity_checking:
            self.save_picture(self._shown)

    def on_test_epoch_end(self) -> None:
        self.log("test/loss", self.test_loss.compute(), sync_dist=False)
        self.test_loss.reset()

    # ------------------------------------------------------------------ pictures

    @torch.no_grad()
    def reconstruction_grid(self, images: torch.Tensor, pred: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Rows of (original, masked input, reconstruction with the visible patches pasted back), as MAE's
        visualisation; a ``norm_pix_loss`` prediction is mapped back with each patch's own mean and std."""
        from torchvision.utils import make_grid

        net = self.net
        n = images.shape[0]
        pred, mask = pred[:n].float(), mask[:n, :, None].float()
        target = net.patchify(images.float())
        if net.norm_pix_loss:
            mean, std = target.mean(dim=-1, keepdim=True), (target.var(dim=-1, keepdim=True) + 1.0e-6) ** 0.5
            pred = pred * std + mean
        masked = net.unpatchify(target * (1 - mask))
        pasted = net.unpatchify(target * (1 - mask) + pred * mask)
        rows = torch.stack([images.float(), masked, pasted], dim=1).flatten(0, 1)  # [3n, C, H, W]
        lo, hi = images.min(), images.max()
        return make_grid(((rows - lo) / (hi - lo + 1e-8)).clamp(0, 1).cpu(), nrow=3, padding=1, pad_value=1.0)

    def save_picture(self, grid: torch.Tensor) -> None:
        from torchvision.utils import save_image

        assert self.picture_dir is not None
        self.picture_dir.mkdir(parents=True, exist_ok=True)
        path = self.picture_dir / "reconstructions.png"
        save_image(grid, path)
        from lightning.pytorch.loggers import WandbLogger

        for logger in self.loggers:
            if isinstance(logger, WandbLogger):
                logger.log_image("reconstructions", [str(path)], step=self.global_step)
