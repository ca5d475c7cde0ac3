"""The LightningModules on their own (no Hydra): losses and metrics against direct computations."""

from __future__ import annotations

import math

import lightning.pytorch as pl
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import resblocks
from recipes.modules import CausalLM, ImageClassifier, OptimizerSettings, ScheduleSettings, TextClassifier


def trainer(**kwargs) -> pl.Trainer:
    defaults = {"accelerator": "cpu", "devices": 1, "logger": False, "enable_checkpointing": False}
    defaults |= {"enable_progress_bar": False, "enable_model_summary": False}
    return pl.Trainer(**{**defaults, **kwargs})


def tiny_gpt() -> nn.Module:
    torch.manual_seed(0)
    return resblocks.build_model("gpt", vocab_size=11, block_size=8, depth=1, dim=16, heads=2)


def lm_loader(n: int = 10, batch: int = 4) -> DataLoader:
    g = torch.Generator().manual_seed(1)
    x = torch.randint(0, 11, (n, 8), generator=g)
    return DataLoader(TensorDataset(x, torch.roll(x, -1, dims=1)), batch_size=batch)  # last batch smaller


def test_lm_validation_metrics_are_token_weighted_means():
    module = CausalLM(tiny_gpt(), chars_per_token=2.0)
    loader = lm_loader()
    (result,) = trainer().validate(module, loader, verbose=False)
    net = module.net.eval()
    with torch.no_grad():
        x, y = loader.dataset.tensors
        expected = F.cross_entropy(net(x).flatten(0, 1), y.flatten()).item()  # mean over all 80 tokens
    assert result["val/loss"] == pytest.approx(expected, rel=1e-5)
    assert result["val/ppl"] == pytest.approx(math.exp(expected), rel=1e-5)
    assert result["val/bpc"] == pytest.approx(expected / math.log(2) / 2.0, rel=1e-5)


def test_lm_trains_and_samples():
    chars = "abcdefghij\n"
    module = CausalLM(tiny_gpt(), OptimizerSettings(lr=1e-2), encode=lambda s: [chars.index(c) for c in s],
                      decode=lambda ids: "".join(chars[i] for i in ids))  # fmt: skip
    before = [p.detach().clone() for p in module.parameters()]
    trainer(max_steps=3).fit(module, lm_loader())
    assert any(not torch.equal(a, b) for a, b in zip(before, module.parameters()))
    module.net.train()
    text = module.sample("ab", max_new_tokens=12, seed=3)
    assert len(text) == 14 and text.startswith("ab") and set(text) <= set(chars)
    assert module.sample("ab", max_new_tokens=12, seed=3) == text  # seeded
    assert module.net.training  # sampling switched to eval and back
    with pytest.raises(TypeError, match="encode= and decode="):
        CausalLM(tiny_gpt()).sample("a")


class Linear(nn.Module):
    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.fc = nn.Linear(12, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x.flatten(1))


def test_image_classifier_loss_and_accuracy():
    torch.manual_seed(0)
    x, y = torch.randn(16, 3, 2, 2), torch.arange(16) % 5
    module = ImageClassifier(Linear(5), num_classes=5, label_smoothing=0.1)
    (result,) = trainer().validate(module, DataLoader(TensorDataset(x, y), batch_size=16), verbose=False)
    logits = module.net(x)
    assert result["val/loss"] == pytest.approx(F.cross_entropy(logits, y, label_smoothing=0.1).item(), rel=1e-5)
    assert result["val/acc"] == pytest.approx((logits.argmax(1) == y).float().mean().item())
    assert "val/acc5" not in result and "val_acc5" in ImageClassifier(Linear(100), num_classes=100).metrics


def test_num_classes_from_the_datamodule_at_setup():
    class DM(pl.LightningDataModule):
        num_classes = 3

        def val_dataloader(self):
            return DataLoader(TensorDataset(torch.randn(6, 12), torch.tensor([0, 1, 2, 0, 1, 2])), batch_size=3)

    module = ImageClassifier(lambda: Linear(3))  # network built in configure_model, classes from the data
    (result,) = trainer().validate(module, datamodule=DM(), verbose=False)
    assert module.num_classes == 3 and 0 <= result["val/acc"] <= 1
    assert isinstance(module.net, Linear)


def test_text_classifier_passes_the_pad_mask():
    seen = {}

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.emb = nn.Embedding(10, 2)

        def forward(self, ids, pad_mask):
            seen["mask"] = pad_mask
            return self.emb(ids).masked_fill(pad_mask[..., None], 0).sum(1)

    ids = torch.tensor([[1, 2, 0], [3, 0, 0]])
    mask, labels = ids == 0, torch.tensor([0, 1])
    module = TextClassifier(Net(), num_classes=2, optim=OptimizerSettings(), sched=ScheduleSettings())
    trainer().validate(module, DataLoader(TensorDataset(ids, mask, labels), batch_size=2), verbose=False)
    assert torch.equal(seen["mask"], mask)


def test_configure_optimizers_uses_the_trainers_horizon():
    module = CausalLM(tiny_gpt(), OptimizerSettings(lr=1.0), ScheduleSettings(name="cosine", min_lr=0.0))
    t = trainer(max_steps=10)
    t.fit(module, lm_loader())
    lr = t.optimizers[0].param_groups[0]["lr"]
    assert lr == pytest.approx(0.0, abs=1e-12)  # cosine reached min_lr exactly at max_steps


class _Recorder(pl.loggers.Logger):
    """Keeps what Lightning passes to a logger: ``{step: {name: value}}``."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: dict[int, dict[str, float]] = {}

    name, version = "recorder", 0

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        self.rows.setdefault(int(step or 0), {}).update(metrics)

    def log_hyperparams(self, *args, **kwargs) -> None:
        pass


class _LastLoss(pl.Callback):
    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.loss = float(outputs["loss"])


@pytest.mark.parametrize("max_steps", [7, 9])
def test_training_loss_is_logged_only_when_a_logger_reads_it(monkeypatch, max_steps):
    """The loggers get the same ``train/loss`` rows as when every step logs; the run ends on its last loss."""
    got = {}
    for gated in (True, False):
        if not gated:
            monkeypatch.setattr(CausalLM, "logs_this_step", lambda self: True)
        module, recorder, last = CausalLM(tiny_gpt(), OptimizerSettings(lr=1e-2)), _Recorder(), _LastLoss()
        calls = []
        log = module.log
        monkeypatch.setattr(module, "log", lambda name, *a, **k: (calls.append(name), log(name, *a, **k))[1])
        t = trainer(max_steps=max_steps, log_every_n_steps=3, logger=recorder, callbacks=[last])
        t.fit(module, lm_loader(n=40))
        got[gated] = {s: r["train/loss"] for s, r in recorder.rows.items() if "train/loss" in r}
        assert float(t.callback_metrics["train/loss"]) == pytest.approx(last.loss)  # the final step's loss
        if gated:
            assert calls.count("train/loss") == max_steps // 3 + (max_steps % 3 != 0)  # steps 3, 6, ... and the last
    assert got[True] == got[False] and len(got[True]) == max_steps // 3
