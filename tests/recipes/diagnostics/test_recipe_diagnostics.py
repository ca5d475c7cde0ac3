"""The recipes log ``residual/...`` per-depth scalars and draw the pictures by default; ``diagnostics=off`` does not."""

from __future__ import annotations

import json

import pytest
from recipe_helpers import compose, csv_rows, run, tiny

from resblocks.errors import ConfigError

GPT = ["+model.depth=2", "+model.dim=32", "+model.heads=2", "data.val_batches=1", "sample.tokens=0"]


def residual_keys(rows):
    return {k for r in rows for k, v in r.items() if k.startswith("residual/") and v}


def test_recipe_logs_residual_scalars_and_pictures_by_default(tiny_data, tmp_path):
    run_dir = tmp_path / "run"
    run(tiny("shakespeare_gpt", tiny_data, run_dir, *GPT, "trainer.max_steps=3", "diagnostics.every_n_steps=2"))
    rows = csv_rows(run_dir)
    keys = residual_keys(rows)
    # 2 blocks x 2 sub-layers, zero-padded indices; the default cadence probes step 0 of any run.
    assert {f"residual/grad_rms/{i}" for i in range(4)} <= keys and "residual/update_ratio/3" in keys
    assert sorted({int(r["step"]) for r in rows if r.get("residual/grad_rms/0")}) == [0, 2]
    folder = run_dir / "diagnostics"
    assert {p.name for p in folder.iterdir()} >= {"grad_rms.png", "update_ratio.png", "profile.png", "history.json"}
    assert [h["step"] for h in json.loads((folder / "history.json").read_text())] == [0, 2]


def test_diagnostics_off(tiny_data, tmp_path):
    run_dir = tmp_path / "run"
    run(tiny("shakespeare_gpt", tiny_data, run_dir, *GPT, "trainer.max_steps=2", "diagnostics=off"))
    assert not residual_keys(csv_rows(run_dir))
    assert not (run_dir / "diagnostics").exists()


def test_defaults_and_bad_values():
    cfg = compose(["recipe=fmnist_resnet20"])
    assert cfg.diagnostics.every_n_steps == 250 and cfg.diagnostics.effective_rank is False
    assert compose(["diagnostics=off"]).diagnostics.every_n_steps == 0
    from recipes.build import check_values

    with pytest.raises(ConfigError, match=r"diagnostics.every_n_steps: -1; valid: >= 0"):
        check_values(compose(["diagnostics.every_n_steps=-1"]))


def test_resumed_run_draws_the_whole_history(tiny_data, tmp_path):
    """The history is in the checkpoint: a run resumed at step 2 still draws steps 0 and 1."""
    run_dir = tmp_path / "run"
    common = [*GPT, "diagnostics.every_n_steps=1", "checkpoint.every_n_steps=2", "trainer.val_check_interval=2"]
    run(tiny("shakespeare_gpt", tiny_data, run_dir, *common, "trainer.max_steps=2"))
    run(tiny("shakespeare_gpt", tiny_data, run_dir, *common, "trainer.max_steps=4", "resume=auto"))
    history = json.loads((run_dir / "diagnostics" / "history.json").read_text())
    assert [h["step"] for h in history] == [0, 1, 2, 3]
    steps = [int(r["step"]) for r in csv_rows(run_dir) if r.get("residual/grad_rms/0")]
    assert steps == [0, 1, 2, 3]  # each probed step logged once


def test_wandb_gets_scalars_and_pictures_and_tensorboard_scalars(tiny_data, tmp_path, monkeypatch):
    """W&B (offline here): the residual/* scalars at their steps and the pictures as W&B images; TensorBoard:
    the scalars in its event file."""
    from lightning.pytorch.loggers import WandbLogger

    logged, log_metrics = [], WandbLogger.log_metrics

    def spy(self, metrics, step=None):
        logged.append((step, sorted(k for k in metrics if k.startswith("residual/"))))
        return log_metrics(self, metrics, step)

    monkeypatch.setattr(WandbLogger, "log_metrics", spy)
    run_dir = tmp_path / "wb"
    over = [*GPT, "trainer.max_steps=3", "diagnostics.every_n_steps=2", "logger=wandb", "logger.mode=offline"]
    run(tiny("shakespeare_gpt", tiny_data, run_dir, *over))
    probed = [(step, keys) for step, keys in logged if keys and not keys[0].startswith("residual/pictures/")]
    assert [step for step, _ in probed] == [0, 2] and "residual/grad_rms/3" in probed[0][1]
    pictures = [keys[0] for step, keys in logged if keys and keys[0].startswith("residual/pictures/")]
    assert set(pictures) >= {"residual/pictures/grad_rms", "residual/pictures/profile"}  # log_image, at the end
    files = [p for p in (run_dir / "wandb").rglob("*") if p.is_file()]
    images = [p.name for p in files if "media" in p.parts and p.suffix == ".png"]  # WandbLogger.log_image's copies
    assert any(n.startswith("grad_rms") for n in images) and any(n.startswith("profile") for n in images), images

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    tb_dir = tmp_path / "tb"
    run(tiny("shakespeare_gpt", tiny_data, tb_dir, *GPT, "trainer.max_steps=1", "logger=tensorboard"))
    events = EventAccumulator(str(next(tb_dir.rglob("events.out.tfevents.*")).parent))
    events.Reload()
    assert "residual/update_ratio/0" in events.Tags()["scalars"]
    assert [e.step for e in events.Scalars("residual/grad_rms/0")] == [0]
