"""Causal language modelling: next-token cross-entropy, perplexity and bits per character."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torchmetrics import MeanMetric

from .base import NetOrFactory, ResidualTaskModule
from .optim import OptimizerSettings, ScheduleSettings


class CausalLM(ResidualTaskModule):
    """``net(ids [B,T]) -> logits [B,T,V]`` trained on batches ``(x, y)`` with ``y`` = ``x`` shifted by one.

    Logs ``train/loss`` at the logging steps (:meth:`logs_this_step`) and, per validation/test pass,
    ``{stage}/loss`` (nats per token, averaged over all tokens by a torchmetrics ``MeanMetric``, so it is exact
    under DDP),
    ``{stage}/ppl`` = exp(loss) and ``{stage}/bpc`` = loss / ln 2 / chars_per_token.

    Args:
        chars_per_token: characters per token of the evaluation text; 1 for a character-level
            vocabulary. ``None``: the DataModule's ``chars_per_token`` once it is set up (a BPE vocabulary's
            ratio is known only then); without one, bits per character are skipped.
        encode, decode: the tokenizer's text <-> ids functions, for :meth:`sample`.
    """

    def __init__(
        self,
        net: NetOrFactory,
        optim: OptimizerSettings | None = None,
        sched: ScheduleSettings | None = None,
        chars_per_token: float | None = 1.0,
        encode: Callable[[str], Sequence[int]] | None = None,
        decode: Callable[[Sequence[int]], str] | None = None,
    ) -> None:
        super().__init__(net, optim, sched)
        self.chars_per_token, self.encode, self.decode = chars_per_token, encode, decode
        self.val_loss, self.test_loss = MeanMetric(), MeanMetric()

    def setup(self, stage: str) -> None:
        super().setup(stage)
        if self.chars_per_token is None:  # Lightning sets the DataModule up before the module
            dm = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
            try:
                self.chars_per_token = getattr(dm, "chars_per_token", None)
            except RuntimeError:  # not set up
                pass

    def loss(self, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        x, y = batch
        logits = self.net(x)
        return F.cross_entropy(logits.flatten(0, 1).float(), y.flatten())

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        loss = self.loss(batch)
        if self.logs_this_step():
            self.log("train/loss", loss, on_step=True, on_epoch=False, prog_bar=True, batch_size=batch[0].shape[0])
        return loss

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        self.val_loss.update(self.loss(batch), weight=batch[1].numel())

    def test_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        self.test_loss.update(self.loss(batch), weight=batch[1].numel())

    def _log_eval(self, stage: str, metric: MeanMetric) -> None:
        loss = metric.compute()  # synchronised across ranks
        metric.reset()
        self.log(f"{stage}/loss", loss, prog_bar=True)
        self.log(f"{stage}/ppl", loss.exp())
        if self.chars_per_token:
            self.log(f"{stage}/bpc", loss / math.log(2) / self.chars_per_token)

    def on_validation_epoch_end(self) -> None:
        self._log_eval("val", self.val_loss)

    def on_test_epoch_end(self) -> None:
        self._log_eval("test", self.test_loss)

    def batch_tokens(self, batch: Any) -> int | None:
        return batch[0].numel()

    @torch.no_grad()
    def generate(self, idx: torch.Tensor, max_new_tokens: int, temperature: float = 1.0, top_k: int | None = None,
                 generator: torch.Generator | None = None) -> torch.Tensor:  # fmt: skip
        """Token ids ``[B, T]`` -> ``[B, T + max_new_tokens]`` sampled from the network (eval mode)."""
        if not hasattr(self.net, "generate"):
            raise TypeError(f"{type(self.net).__name__} has no generate(); resblocks' GPT has one")
        was_training = self.net.training
        self.net.eval()
        try:
            return self.net.generate(idx, max_new_tokens, temperature=temperature, top_k=top_k, generator=generator)
        finally:
            self.net.train(was_training)

    def sample(self, prompt: str = "\n", max_new_tokens: int = 500, temperature: float = 0.8,
               top_k: int | None = 200, seed: int = 0) -> str:  # fmt: skip
        """Text continuing ``prompt`` (needs ``encode``/``decode``); seeded, so the same weights give the same text."""
        if self.encode is None or self.decode is None:
            raise TypeError("CausalLM.sample needs encode= and decode= (the data's tokenizer)")
        device = next(self.net.parameters()).device
        idx = torch.tensor([list(self.encode(prompt))], dtype=torch.long, device=device)
        gen = torch.Generator(device=device).manual_seed(seed)
        out = self.generate(idx, max_new_tokens, temperature=temperature, top_k=top_k, generator=gen)
        return self.decode(out[0].tolist())
