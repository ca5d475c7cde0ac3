"""The training recipes as the benchmarks use them: composed from ``conf/`` with ``recipes.build``.

One :class:`RecipeSetup` gives what both the Lightning path and the plain-PyTorch loop need, built
by the recipes' own code so the two train the same network on the same data with the same
optimiser: the composed config, the loaded DataModule, the network, the loss and the batches.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from omegaconf import DictConfig, OmegaConf
from torch import nn

from recipes.engine.fast_path import Decision

from .context import Context

CONF = Path(__file__).resolve().parents[1] / "conf"
# recipe -> the dataset name its data.path belongs to (``--data-path NAME=PATH``)
DATASET = {"fmnist_resnet20": "fmnist", "shakespeare_gpt": "shakespeare"}


def compose(recipe: str, overrides: list[str]) -> DictConfig:
    """The config ``python -m recipes.train recipe=<recipe> <overrides>`` would run."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    import recipes.config  # noqa: F401  (registers the schema)

    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return hydra_compose("train", overrides=[f"recipe={recipe}", *overrides])


@dataclass
class RecipeSetup:
    name: str
    cfg: DictConfig
    dm: Any
    device: torch.device

    @property
    def is_lm(self) -> bool:
        from recipes.data import LanguageModelData

        return isinstance(self.dm, LanguageModelData)

    @property
    def batch_size(self) -> int:
        return int(self.cfg.data.batch_size)

    def decision(self) -> Decision:
        """The recipe's fast path on this device (``recipes.build.fast_path_for``: what ``recipes.train`` would use)."""
        from recipes.build import fast_path_for

        return fast_path_for(self.cfg, self.dm)

    def build_net(self, seed: int = 0) -> nn.Module:
        """The recipe's network (the data's sizes filled in), seeded, on the device."""
        from recipes.build import build_net

        torch.manual_seed(seed)
        return build_net(self.cfg, self.dm).to(self.device)

    def loss_fn(self) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
        """The task module's training loss, written out."""
        if self.is_lm:
            return lambda logits, y: F.cross_entropy(logits.flatten(0, 1).float(), y.flatten())
        smoothing = float(self.cfg.task.label_smoothing)
        return lambda logits, y: F.cross_entropy(logits, y, label_smoothing=smoothing)

    def optimizer(self, net: nn.Module) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]:
        """The recipe's optimiser and per-step LR schedule (``recipes.modules.optim``)."""
        from recipes.modules.optim import configure_optimizers

        optim, sched = OmegaConf.to_object(self.cfg.optim), OmegaConf.to_object(self.cfg.sched)
        out = configure_optimizers(net, optim, sched, max(1, int(self.cfg.trainer.max_steps)))
        return out["optimizer"], out["lr_scheduler"]["scheduler"]

    def transform(self, batch: Any, train: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """Move a loader batch to the device and apply the DataModule's on-device transform (augment, normalise)."""
        batch = tuple(t.to(self.device, non_blocking=True) for t in batch)
        if hasattr(self.dm, "transform_batch"):
            return self.dm.transform_batch(batch, train=train)
        return batch  # type: ignore[return-value]

    def train_batches(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Transformed train batches forever (epoch after epoch), as a plain loop consumes them."""
        for batch in itertools.chain.from_iterable(self.dm.train_dataloader() for _ in itertools.count()):
            yield self.transform(batch, train=True)

    def val_batches(self, limit: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """The first ``limit`` validation batches (fixed: no shuffling in val loaders)."""
        return [self.transform(b, train=False) for b in itertools.islice(self.dm.val_dataloader(), limit)]

    def fixed_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        return next(self.train_batches())


def overrides(ctx: Context, recipe: str) -> list[str]:
    """CPU/GPU, one device, no tracker; ``smoke`` shrinks the batch to the tiny test data."""
    accel = "gpu" if ctx.device.type == "cuda" else "cpu"
    out = [
        f"trainer.accelerator={accel}", "trainer.devices=1", "trainer.strategy=auto", "logger=none",
        "trainer.enable_progress_bar=false", "trainer.enable_model_summary=false",
    ]  # fmt: skip
    path = ctx.data_paths.get(DATASET[recipe])
    if path:
        out.append(f"data.path={path}")
    if ctx.mode == "smoke":
        out.append(f"data.batch_size={4 if recipe == 'fmnist_resnet20' else 2}")
    return out


def load(ctx: Context, recipe: str, extra: list[str] | None = None) -> RecipeSetup:
    """Compose ``recipe``, build and load its DataModule (``prepare_data`` + ``setup``)."""
    from recipes.build import build_data

    cfg = compose(recipe, overrides(ctx, recipe) + list(extra or []))
    dm = build_data(cfg)
    dm.prepare_data()
    dm.setup("fit")
    return RecipeSetup(recipe, cfg, dm, ctx.device)


__all__ = ["CONF", "DATASET", "RecipeSetup", "compose", "load", "overrides"]
