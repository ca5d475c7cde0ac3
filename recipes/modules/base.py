"""The part every task module shares: the network, the optimiser and the LR schedule."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import lightning.pytorch as pl
from torch import nn

from ..runs.plan import WeightsMismatch, weights_mismatch
from .optim import OptimizerSettings, ScheduleSettings, configure_optimizers

NetOrFactory = nn.Module | Callable[[], nn.Module]


class ResidualTaskModule(pl.LightningModule):
    """Wraps a pure-PyTorch ``net`` (any ``resblocks`` model, or your own) for Lightning.

    Args:
        net: the network, or a zero-argument callable that builds it. A callable is called in
            :meth:`configure_model`, i.e. after the DataModule's ``setup`` (so sizes that come
            from the data are known) and, under FSDP, inside the sharding context.
        optim: optimiser and its hyper-parameters (``OptimizerSettings()``: AdamW, lr 1e-3).
        sched: per-step LR schedule (``ScheduleSettings()``: constant).
    """

    def __init__(
        self,
        net: NetOrFactory,
        optim: OptimizerSettings | None = None,
        sched: ScheduleSettings | None = None,
    ) -> None:
        super().__init__()
        self._net_factory: Callable[[], nn.Module] | None = None
        if isinstance(net, nn.Module):
            self.net: nn.Module | None = net
        else:
            self.net, self._net_factory = None, net
        self.optim = optim or OptimizerSettings()
        self.sched = sched or ScheduleSettings()

    def configure_model(self) -> None:
        if self.net is None and self._net_factory is not None:
            self.net = self._net_factory()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Before Lightning loads the weights: every name and shape must match, else one line naming the first
        mismatched tensor (:class:`~recipes.runs.plan.WeightsMismatch`), not ``load_state_dict``'s list of all of them.

        Not under FSDP, whose state dict is a collective (Lightning's own error then)."""
        from lightning.pytorch.strategies import FSDPStrategy

        if not self.strict_loading or isinstance(getattr(self._trainer, "strategy", None), FSDPStrategy):
            return
        mismatch = weights_mismatch(checkpoint.get("state_dict") or {}, self.state_dict())
        if mismatch:
            raise WeightsMismatch(mismatch)

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        return self.net(*args, **kwargs)

    def total_steps(self) -> int:
        """Optimiser steps of the whole run (the cosine horizon when ``sched.total_steps`` is unset)."""
        return self.sched.total_steps or int(self.trainer.estimated_stepping_batches)

    def configure_optimizers(self) -> dict[str, Any]:
        return configure_optimizers(self.net, self.optim, self.sched, self.total_steps())

    def logs_this_step(self) -> bool:
        """Whether this training step's ``on_step`` values reach the loggers: Lightning passes them on every
        ``log_every_n_steps``-th step; the last step of the run and of each epoch are logged too, so the summary
        and the progress line end on the final values. The steps between are not logged at all: Lightning
        would overwrite them unread, and one ``self.log`` call costs ~1 ms on the CPU, 1.2 % of the default run.
        Outside a trainer (a direct call), True."""
        trainer = self._trainer
        if trainer is None:
            return True
        step = trainer.global_step + 1  # this step, counted as Lightning's logger connector counts it
        last = 0 < trainer.max_steps <= step or trainer.is_last_batch
        return last or step % max(1, trainer.log_every_n_steps) == 0

    # Sizes of a batch, for the throughput monitor (override for other batch layouts).
    def batch_samples(self, batch: Any) -> int:
        return int(batch[0].shape[0])

    def batch_tokens(self, batch: Any) -> int | None:
        return None
