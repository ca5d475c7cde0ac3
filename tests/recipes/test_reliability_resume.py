"""Reliability 1: a training process killed (SIGKILL) at an arbitrary step resumes with `resume=auto` to the
weights of an uninterrupted run, and the combined log has every step exactly once.

The kill point is random (printed on failure): every point must work. Dropout is on, and an epoch is
three batches, so every checkpoint (every 3 steps) is at an epoch boundary, where a DataLoader
iterator draws from the global RNG and the data position wraps: the resumed run must still match.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from lightning.pytorch.callbacks import Callback
from recipe_helpers import CPU, compose, csv_rows
from reliability_helpers import SUBPROCESS_ENV, Crash, CrashAt, one_thread  # noqa: F401  (one_thread: autouse)

STEPS = 90  # the kill comes at step 4..40: the rest is margin for a slow poller on a busy machine
ENV = SUBPROCESS_ENV


def overrides(text: Path, run_dir: Path, *extra: str) -> list[str]:
    return [
        "recipe=shakespeare_gpt", "data=text_files", f"data.path={text}", "data.block_size=16", "data.batch_size=2",
        "data.val_batches=1", "+data.samples_per_epoch=6", "+model.depth=1", "+model.dim=32", "+model.heads=2",
        "model.dropout=0.1", "sample.tokens=0", f"trainer.max_steps={STEPS}", "trainer.val_check_interval=5",
        "checkpoint.every_n_steps=3", "trainer.log_every_n_steps=1", "trainer.deterministic=true", "logger=csv",
        f"run_dir={run_dir}", *CPU, *extra,
    ]  # fmt: skip


def train_cli(args: list[str], cwd: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "recipes.train", *args], cwd=cwd, env=ENV, start_new_session=True,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip


def logged_train_steps(run_dir: Path) -> list[int]:
    return [int(r["step"]) for r in csv_rows(run_dir) if r.get("train/loss")]


def weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)["state_dict"]


def test_sigkill_at_a_random_step_then_resume_auto_is_exact(tiny_data, tmp_path):
    from recipes.train import train

    kill_at = 3 * random.Random().randint(1, 13) + 1  # once step 3m+1 is logged: after checkpoint 3m, before 3m+3
    run_dir = tmp_path / "killed"
    proc = train_cli(overrides(tiny_data["text"], run_dir), tmp_path)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            if max(logged_train_steps(run_dir), default=-1) >= kill_at:
                break
            time.sleep(0.02)
        time.sleep(random.uniform(0, 0.02))  # anywhere inside a step, a save or a validation
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        out = proc.communicate(timeout=60)[0]
    assert proc.returncode == -signal.SIGKILL, f"killed at step >= {kill_at}, but the run ended first:\n{out[-2000:]}"
    assert not (run_dir / "summary.json").exists()

    resumed = subprocess.run(
        [sys.executable, "-m", "recipes.train", *overrides(tiny_data["text"], run_dir, "resume=auto")],
        cwd=tmp_path, env=ENV, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert resumed.returncode == 0, f"kill at step {kill_at}: {resumed.stderr[-3000:]}"
    assert "resumed from" in resumed.stdout

    train(compose(overrides(tiny_data["text"], tmp_path / "straight")))  # the uninterrupted reference, in process
    got, want = weights(run_dir), weights(tmp_path / "straight")
    worst = max((got[k] - want[k]).abs().max().item() for k in want)
    assert worst <= 1e-6, f"killed at step {kill_at}: weights differ by {worst}"
    assert logged_train_steps(run_dir) == list(range(STEPS)), f"killed at step {kill_at}: gaps or repeats"
    val_steps = [int(r["step"]) for r in csv_rows(run_dir) if r.get("val/loss")]
    assert val_steps == [int(r["step"]) for r in csv_rows(tmp_path / "straight") if r.get("val/loss")]


class WatchPublish(Callback):
    """Where StepCheckpoint publishes (batch start, epoch end; it runs after this callback), the step a staged
    checkpoint holds must already be logged, and last.ckpt must still be the previous one."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir, self.checked = run_dir, 0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.check(trainer)

    def on_train_epoch_end(self, trainer, pl_module):
        self.check(trainer)

    def check(self, trainer):
        staged = list((self.run_dir / "checkpoints").glob(".last.ckpt.tmp-staged"))
        if staged:
            step = torch.load(staged[0], weights_only=True)["global_step"]
            assert step == trainer.global_step and max(logged_train_steps(self.run_dir)) == step - 1
            last = self.run_dir / "checkpoints" / "last.ckpt"
            assert not last.exists() or torch.load(last, weights_only=True)["global_step"] < step
            self.checked += 1


def test_checkpoints_are_published_only_after_their_step_is_logged(tiny_data, tmp_path):
    from recipes.train import train

    watch = WatchPublish(tmp_path)
    more = ["trainer.max_steps=8", "trainer.val_check_interval=8", "data.samples_per_epoch=12"]  # 6 batches per epoch
    train(compose(overrides(tiny_data["text"], tmp_path, *more)), callbacks=[watch])
    assert watch.checked == 2  # step 3 published at the next batch, step 6 at the epoch's end
    assert torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 8
    assert not list((tmp_path / "checkpoints").glob(".*"))  # nothing staged or temporary left behind


def test_steps_logged_past_the_checkpoint_are_dropped_on_resume(tiny_data, tmp_path):
    from recipes.train import train

    with pytest.raises(Crash):
        train(compose(overrides(tiny_data["text"], tmp_path, "trainer.max_steps=9")), callbacks=[CrashAt(8)])
    assert logged_train_steps(tmp_path) == list(range(7))  # step 6 comes after the checkpoint at 6
    train(compose(overrides(tiny_data["text"], tmp_path, "trainer.max_steps=9", "resume=auto")))
    assert logged_train_steps(tmp_path) == list(range(9))
