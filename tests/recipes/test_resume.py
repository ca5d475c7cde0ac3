"""Interrupt a run, `resume=auto`, and the step, optimiser, scheduler, data position and run id carry over."""

from __future__ import annotations

import pytest
import torch
import yaml
from recipe_helpers import csv_rows, run, tiny
from reliability_helpers import Crash, CrashAt

from recipes.runs.plan import RUN_ID_FILE

TINY_GPT = ["+model.depth=1", "+model.dim=32", "+model.heads=2", "data.val_batches=2", "sample.tokens=0"]


def overrides(tiny_data, run_dir, *extra):
    steps = [
        "trainer.max_steps=6",
        "checkpoint.every_n_steps=3",
        "trainer.val_check_interval=3",
        "trainer.log_every_n_steps=1",
    ]
    return tiny("shakespeare_gpt", tiny_data, run_dir, *TINY_GPT, *steps, *extra)


def load(path):
    return torch.load(path, map_location="cpu", weights_only=True)


def test_interrupt_then_resume_auto(tiny_data, tmp_path):
    run_dir = tmp_path / "run"
    with pytest.raises(Crash):
        run(overrides(tiny_data, run_dir, "logger=wandb"), callbacks=[CrashAt(4)])
    run_id = (run_dir / RUN_ID_FILE).read_text().strip()
    crashed = load(run_dir / "checkpoints" / "last.ckpt")
    assert crashed["global_step"] == 3 and crashed["resblocks"]["run_id"] == run_id
    assert crashed["resblocks"]["config"]["trainer"]["max_steps"] == 6  # the resolved config travels along

    summary = run(overrides(tiny_data, run_dir, "logger=wandb", "resume=auto"))
    assert summary.steps == 6 and summary.run_id == run_id
    assert summary.resumed_from.endswith("last.ckpt")
    final = load(run_dir / "checkpoints" / "last.ckpt")
    assert final["global_step"] == 6
    # AdamW's per-parameter step counter and the LR scheduler continued from 3, not from 0.
    assert all(float(s["step"]) == 6 for s in final["optimizer_states"][0]["state"].values())
    assert final["lr_schedulers"][0]["last_epoch"] == 6
    # Same W&B run: both invocations logged to offline runs with the one id (W&B appends "-1" to the
    # second folder's name when both start within the same second).
    assert len(list((run_dir / "wandb").glob(f"offline-run-*-{run_id}*"))) == 2


def test_resumed_run_matches_an_uninterrupted_one(tiny_data, tmp_path):
    """Step count, optimiser state and data position carry over exactly: the weights equal a straight run's."""
    with pytest.raises(Crash):
        run(overrides(tiny_data, tmp_path / "a"), callbacks=[CrashAt(4)])
    run(overrides(tiny_data, tmp_path / "a", "resume=auto"))
    run(overrides(tiny_data, tmp_path / "b"))
    resumed, straight = (load(tmp_path / r / "checkpoints" / "last.ckpt")["state_dict"] for r in "ab")
    for key in straight:
        torch.testing.assert_close(resumed[key], straight[key], rtol=0, atol=0, msg=key)
    # The CSV log of the resumed invocation continues the step count.
    rows = csv_rows(tmp_path / "a")
    steps = [int(r["step"]) for r in rows if r.get("train/loss")]
    assert steps == sorted(steps) and steps[-1] == 5
    # Learning rate and throughput are logged; the logged config is fully resolved.
    assert any(r.get("lr") for r in rows) and any(r.get("perf/tokens_per_sec") for r in rows)
    hparams = yaml.safe_load((tmp_path / "a" / "csv" / "version_1" / "hparams.yaml").read_text())
    assert hparams["model"]["block_size"] == 64 and hparams["run_dir"] == str(tmp_path / "a")


def test_rerunning_a_finished_run_is_refused_not_overwritten(tiny_data, tmp_path):
    from resblocks.errors import ConfigError

    run(overrides(tiny_data, tmp_path / "r", "trainer.max_steps=3"))
    with pytest.raises(ConfigError, match=r"already holds .* resume=auto"):
        run(overrides(tiny_data, tmp_path / "r", "trainer.max_steps=3"))
    # Resuming into another network is refused before anything is built.
    with pytest.raises(ConfigError, match=r"^resume: the checkpoint's network differs \(model\.dim=32->48"):
        run(overrides(tiny_data, tmp_path / "r", "trainer.max_steps=4", "resume=auto", "model.dim=48"))
