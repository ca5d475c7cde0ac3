"""The plain-PyTorch training loop of a recipe, and the "fast path" switches it can run with.

:class:`PlainLoop` is the reference the Lightning recipe is compared with (group ``framework``)
and the loop that the fast path is measured in (groups ``fast_path`` and ``efficiency``):
the recipe's network, optimiser + per-step schedule, loss, gradient clipping and precision,
written out in a dozen lines.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterable, Iterator

import torch
from torch import nn

from recipes.engine.fast_path import FastPath, decide

from .recipe import RecipeSetup
from .timing import sync


def default_fast_path(device: torch.device, conv_net: bool, compile: bool | None = None) -> FastPath:
    """The recipes' default (``recipes.engine.fast_path.decide`` with every switch ``auto``): bf16 where the
    hardware runs it fast, channels-last for conv nets, fused optimisers, ``torch.compile`` on GPU only.
    ``compile`` overrides the last (``None``: auto)."""
    return decide(device, conv_net=conv_net, compile="auto" if compile is None else compile).path


class PlainLoop:
    """``for x, y in batches: loss = loss_fn(net(x), y); backward; clip; step; sched.step(); zero_grad``.

    ``path`` is ``None`` for the recipe's own fast path (what ``python -m recipes.train`` would use:
    ``recipes.build.fast_path_for``), else the :class:`FastPath` switches.
    """

    def __init__(self, setup: RecipeSetup, net: nn.Module, path: FastPath | None = None) -> None:
        from omegaconf import OmegaConf

        from recipes.modules.optim import build_optimizer, build_scheduler

        self.setup, self.path = setup, path or setup.decision().path
        if self.path.channels_last:
            net = net.to(memory_format=torch.channels_last)
        self.net = net.train()
        self.model = torch.compile(net) if self.path.compile else net
        optim, sched = OmegaConf.to_object(setup.cfg.optim), OmegaConf.to_object(setup.cfg.sched)
        self.optimizer = build_optimizer(net, dataclasses.replace(optim, fused=self.path.fused))
        self.scheduler = build_scheduler(self.optimizer, optim.lr, sched, max(1, int(setup.cfg.trainer.max_steps)))
        self.loss_fn = setup.loss_fn()
        self.clip = setup.cfg.trainer.gradient_clip_val

    def prepare(self, x: torch.Tensor) -> torch.Tensor:
        return x.contiguous(memory_format=torch.channels_last) if self.path.channels_last and x.dim() == 4 else x

    def step(
        self, batch: tuple[torch.Tensor, torch.Tensor], after_backward: Callable[[], object] | None = None
    ) -> torch.Tensor:
        """One training step; ``after_backward`` runs between backward and the update (group ``diagnostics``)."""
        x, y = batch
        with torch.autocast(self.setup.device.type, dtype=torch.bfloat16, enabled=self.path.bf16):
            loss = self.loss_fn(self.model(self.prepare(x)), y)
        loss.backward()
        if after_backward is not None:
            after_backward()
        if self.clip:
            nn.utils.clip_grad_norm_(self.net.parameters(), self.clip)
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        return loss.detach()

    def chunk(
        self,
        batches: Iterator[tuple[torch.Tensor, torch.Tensor]],
        steps: int,
        skip: int,
        clock: Callable[[], float] = time.perf_counter,
    ) -> float:
        """Seconds per step over ``steps`` steps: the interval between step starts (batch fetch included),
        from step ``skip`` to the last step's start, as the Lightning timer measures it."""
        starts = []
        for i in range(steps):
            batch = next(batches)
            if i in (skip, steps - 1):
                sync(self.setup.device)
            starts.append(clock())
            self.step(batch)
        return (starts[-1] - starts[skip]) / (steps - 1 - skip)

    def train(self, batches: Iterable[tuple[torch.Tensor, torch.Tensor]]) -> list[torch.Tensor]:
        """Train on ``batches``; the per-step losses (read once at the end, no host sync per step)."""
        return [self.step(batch) for batch in batches]

    @torch.no_grad()
    def evaluate(self, batches: Iterable[tuple[torch.Tensor, torch.Tensor]]) -> dict[str, float]:
        """Mean loss (and accuracy for classifiers) over ``batches``, in eval mode, with the path's precision."""
        self.net.eval()
        loss_sum, correct, n = 0.0, 0, 0
        try:
            for x, y in batches:
                with torch.autocast(self.setup.device.type, dtype=torch.bfloat16, enabled=self.path.bf16):
                    logits = self.model(self.prepare(x))
                    loss = self.loss_fn(logits, y)
                count = y.numel()
                loss_sum += float(loss) * count
                n += count
                if not self.setup.is_lm:
                    correct += int((logits.argmax(-1) == y).sum())
        finally:
            self.net.train()
        out = {"loss": loss_sum / n}
        if not self.setup.is_lm:
            out["acc"] = correct / n
        return out


__all__ = ["FastPath", "PlainLoop", "default_fast_path"]
