"""``recipes.diagnostics.ResidualDiagnostics`` in a user's own Lightning project (not the recipes' modules)."""

from __future__ import annotations

import csv
import json
import math

import lightning.pytorch as pl
import pytest
import torch
import torch.nn.functional as F
from lightning.pytorch.loggers import CSVLogger
from torch.utils.data import DataLoader, TensorDataset

import resblocks
from recipes.diagnostics import ResidualDiagnostics
from resblocks.diagnostics import ResidualProbe
from resblocks.errors import ConfigError


class MyClassifier(pl.LightningModule):
    """What a user writes: a resblocks network, a loss, an optimiser; nothing from recipes."""

    def __init__(self, shortcut="identity"):
        super().__init__()
        self.model = resblocks.build_model("cifar_resnet", depth=8, width=4, num_classes=3, shortcut=shortcut)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.cross_entropy(self.model(x), y)
        self.log("train_loss", loss)
        return loss

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.05)


def loader(n=16, batch=4):
    g = torch.Generator().manual_seed(0)
    return DataLoader(TensorDataset(torch.randn(n, 3, 16, 16, generator=g), torch.arange(n) % 3), batch_size=batch)


def fit(tmp_path, callback, module=None, steps=7, **trainer):
    module = module or MyClassifier()
    logger = CSVLogger(tmp_path, name="logs")
    t = pl.Trainer(
        max_steps=steps, logger=logger, callbacks=[callback], accelerator="cpu", devices=1, log_every_n_steps=1,
        enable_progress_bar=False, enable_model_summary=False, enable_checkpointing=False, default_root_dir=tmp_path,
        **trainer,
    )  # fmt: skip
    torch.manual_seed(0)
    t.fit(module, loader())
    with open(logger.log_dir + "/metrics.csv", newline="") as f:
        return t, module, list(csv.DictReader(f))


def test_user_module_gets_scalars_and_pictures(tmp_path):
    cb = ResidualDiagnostics(every_n_steps=3)
    trainer, module, rows = fit(tmp_path, cb)
    probed = [r for r in rows if r.get("residual/grad_rms/0")]
    assert [int(r["step"]) for r in probed] == [0, 3, 6]  # steps 0, 3, 6 of 7
    # Every sub-layer (3 blocks: depth 8 = 6n + 2, n = 1) and every quantity that exists for it.
    for q in ("x_rms", "f_rms", "out_rms", "grad_rms", "branch_grad_norm", "update_ratio"):
        assert all(float(probed[0][f"residual/{q}/{i}"]) > 0 for i in range(3)), q
    assert [s for s, _ in cb.history] == [0, 3, 6] and len(cb.history[-1][1]) == 3
    folder = tmp_path / "logs" / "version_0" / "diagnostics"  # trainer.log_dir / diagnostics
    for name in ("grad_rms", "update_ratio", "profile"):
        png = folder / f"{name}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size < 200_000
    assert not (folder / "shortcut_state.png").exists()  # the identity rule has no weights to draw
    history = json.loads((folder / "history.json").read_text())
    assert [h["step"] for h in history] == [0, 3, 6]
    # No hook is left on the model after training.
    for m in module.modules():
        assert not m._forward_hooks and not m._forward_pre_hooks


def test_logged_numbers_are_the_probes_at_that_step(tmp_path):
    """Step 0's logged numbers are what a probe records on the same weights and batch by hand."""
    cb = ResidualDiagnostics(every_n_steps=100)
    torch.manual_seed(0)
    ref = MyClassifier()
    state = {k: v.clone() for k, v in ref.state_dict().items()}
    _, _, rows = fit(tmp_path, cb, module=ref, steps=1)
    by_hand = MyClassifier()
    by_hand.load_state_dict(state)
    x, y = next(iter(loader()))
    with ResidualProbe(by_hand) as probe:
        F.cross_entropy(by_hand.model(x), y).backward()
        records = probe.collect()
    logged = next(r for r in rows if r.get("residual/grad_rms/0"))
    for r in records:
        for q in ("x_rms", "grad_rms", "update_ratio", "branch_grad_norm", "cos_f_x"):
            assert float(logged[f"residual/{q}/{r.index}"]) == pytest.approx(getattr(r, q), rel=1e-5), (q, r.index)


def test_learned_weights_and_effective_rank(tmp_path):
    cb = ResidualDiagnostics(every_n_steps=2, effective_rank=True, rank_rows=64, dirpath=tmp_path / "pics")
    _, _, rows = fit(tmp_path, cb, module=MyClassifier(shortcut="rezero"), steps=5)
    probed = [r for r in rows if r.get("residual/shortcut.alpha/0")]
    assert [int(r["step"]) for r in probed] == [0, 2, 4]
    assert float(probed[0]["residual/shortcut.alpha/0"]) == 0.0  # ReZero's alpha starts at zero...
    assert float(probed[-1]["residual/shortcut.alpha/0"]) != 0.0  # ...and learns
    assert 1 <= float(probed[0]["residual/effective_rank/2"]) <= 16  # at most the width of the last stage
    assert (tmp_path / "pics" / "shortcut_state.png").stat().st_size > 1000


def test_gradient_accumulation_probes_one_step_per_cadence(tmp_path):
    cb = ResidualDiagnostics(every_n_steps=2)
    _, _, rows = fit(tmp_path, cb, steps=3, accumulate_grad_batches=2)
    assert [int(r["step"]) for r in rows if r.get("residual/grad_rms/0")] == [0, 2]


def test_history_is_thinned_and_restored():
    cb = ResidualDiagnostics(every_n_steps=1, max_history=4)
    for step in range(9):
        cb._remember(step, [])
    assert [s for s, _ in cb.history] == [0, 6, 8]  # every other one dropped when full; first and newest kept
    again = ResidualDiagnostics()
    again.load_state_dict(cb.state_dict())
    assert [s for s, _ in again.history] == [s for s, _ in cb.history]


def test_off_and_no_residual_sublayers(tmp_path):
    off = ResidualDiagnostics(every_n_steps=0)
    _, _, rows = fit(tmp_path / "off", off, steps=2)
    assert not any(k.startswith("residual/") for r in rows for k in r)

    class Plain(MyClassifier):
        def __init__(self):
            super().__init__()
            self.model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 16 * 16, 3))

    _, _, rows = fit(tmp_path / "plain", ResidualDiagnostics(every_n_steps=1), module=Plain(), steps=2)
    assert not any(k.startswith("residual/") for r in rows for k in r)  # nothing to record, training unharmed
    with pytest.raises(ConfigError, match="every_n_steps"):
        ResidualDiagnostics(every_n_steps=-1)


def test_compiled_module_is_probed_eagerly(tmp_path):
    """``nn.Module.compile()``: a probed step runs eagerly (the compiled graph would not run new hooks)."""
    module = MyClassifier()
    module.model.compile(backend="eager")
    cb = ResidualDiagnostics(every_n_steps=2)
    _, _, rows = fit(tmp_path, cb, module=module, steps=3)
    probed = [r for r in rows if r.get("residual/grad_rms/0")]
    assert [int(r["step"]) for r in probed] == [0, 2]
    assert all(math.isfinite(float(r["residual/grad_rms/2"])) for r in probed)
    assert module.model._compiled_call_impl is not None  # compiled again after the probed step
