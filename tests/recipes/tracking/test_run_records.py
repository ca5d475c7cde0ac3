"""What a run leaves behind: a summary naming its overrides (a sweep's jobs apart), ``summary.json`` with the
overrides and the resolved choices, ``metrics.csv`` with one row per step, a log file without a progress
bar's refreshes, and no W&B deprecation warning."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from recipe_helpers import ROOT


def test_a_sweep_logged_to_a_file(tiny_data, tmp_path):
    log = tmp_path / "log.txt"
    args = [
        "-m", "recipe=shakespeare_gpt", "shortcut=identity,rezero", f"data.path={tiny_data['plays']}",
        "data.batch_size=2", "+model.depth=1", "+model.dim=16", "+model.heads=2", "data.val_batches=1",
        "sample.tokens=0", "trainer.accelerator=cpu", "trainer.max_steps=120", "trainer.val_check_interval=50",
        "trainer.log_every_n_steps=10", "logger=csv", "diagnostics=off", "threads=1",
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    with open(log, "w") as out:  # stdout to a file, as under SLURM: not a terminal
        proc = subprocess.run([sys.executable, "-m", "recipes.train", *args], cwd=tmp_path, env=env, stdout=out,
                              stderr=subprocess.PIPE, text=True, timeout=600)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    text = log.read_text()
    assert "\r" not in text and "it/s]" not in text, "a progress bar's refreshes in the log"
    assert len(text.encode()) < 10_000  # the bar wrote ~60 KB for these 2 x 120 steps
    assert text.count("val @ step 50: ") == 2 and text.count("step 120/120 (100%)") == 2
    heads = [line for line in text.splitlines() if line.startswith("== shakespeare_gpt")]
    assert len(heads) == 2 and "shortcut=identity" in heads[0] and "shortcut=rezero" in heads[1]
    assert text.rstrip().splitlines()[-1].startswith("  log: CSV: ")  # the summary ends the log
    for job, rule in (("0", "identity"), ("1", "rezero")):
        run = tmp_path / "runs" / "shakespeare_gpt-multirun" / job
        summary = json.loads((run / "summary.json").read_text())
        assert f"shortcut={rule}" in summary["overrides"] and "trainer.max_steps=120" in summary["overrides"]
        assert summary["choices"]["model"] == "gpt_nano" and summary["choices"]["shortcut"]["name"] == rule
        assert summary["choices"]["norm"] == "pre_ln" and summary["choices"]["seed"] == 0
        (metrics,) = run.glob("csv/version_*/metrics.csv")
        rows = list(csv.DictReader(io.StringIO(metrics.read_text())))
        repeated = [s for s, n in Counter(r["step"] for r in rows).items() if n > 1]
        assert not repeated, f"steps with several rows: {repeated}"
        merged = [r for r in rows if r["train/loss"] and r["val/loss"]]  # a validation joins its step's row
        assert [r["step"] for r in merged] == ["49", "99"]


def test_step_writer_merges_one_step_and_keeps_other_steps_apart(tmp_path):
    from recipes.tracking.csv_log import StepCSVLogger

    logger = StepCSVLogger(save_dir=tmp_path, name="csv")
    for metrics, step in (
        ({"train/loss": 1.0, "epoch": 0}, 9),
        ({"val/loss": 2.0, "epoch": 0}, 9),  # after a save (Lightning saves after every call): the file is rewritten
        ({"train/acc": 0.5, "epoch": 0}, 9),
        ({"train/loss": 0.5, "epoch": 0}, 19),
        ({"train/loss": 0.4, "epoch": 0}, 19),  # the same metric again: a row of its own
        ({"val/loss": 1.5, "epoch": 1}, 29),
        ({"train/loss": 0.3, "epoch": 2}, 29),  # another epoch: not the same row
    ):
        logger.log_metrics(metrics, step)
        logger.save()
    logger.finalize("success")
    rows = list(csv.DictReader(io.StringIO(Path(logger.experiment.metrics_file_path).read_text())))
    assert [(r["step"], r["train/loss"], r["val/loss"], r["train/acc"]) for r in rows] == [
        ("9", "1.0", "2.0", "0.5"), ("19", "0.5", "", ""), ("19", "0.4", "", ""), ("29", "", "1.5", ""), ("29", "0.3", "", ""),
    ]  # fmt: skip


def test_line_progress_instead_of_the_bar_when_stdout_is_not_a_terminal():
    from recipes.tracking.progress import LineProgress, progress_callbacks

    class Stream(io.StringIO):
        def __init__(self, tty: bool) -> None:
            super().__init__()
            self.tty = tty

        def isatty(self) -> bool:
            return self.tty

    assert progress_callbacks(True, Stream(tty=True)) == []  # a terminal: Lightning's bar
    assert progress_callbacks(False, Stream(tty=False)) == []  # no progress asked for
    (cb,) = progress_callbacks(True, Stream(tty=False))
    assert isinstance(cb, LineProgress)

    class Trainer:
        global_step, max_steps, is_global_zero, sanity_checking = 500, 2000, True, False
        callback_metrics = {"train/loss": 2.1134, "val/loss": 2.25, "val/bpc": 3.2}

    cb.every, trainer = 0.0, Trainer()
    cb.on_train_start(trainer, None)
    cb._start -= 50.0  # 500 steps in 50 s
    cb._start_step = 0
    cb.on_train_batch_end(trainer, None, None, None, 0)
    cb.on_validation_end(trainer, None)
    lines = cb.stream.getvalue().splitlines()
    assert lines[0].startswith("step 500/2000 (25%)  loss 2.113  10 it/s  elapsed 0m50s  eta 2m30s")
    assert lines[1] == "val @ step 500: bpc 3.2  loss 2.25"


def test_no_wandb_anonymous_deprecation_warning(tmp_path):
    pytest.importorskip("wandb")
    from recipes.tracking.wandb_rewind import RewindingWandbLogger

    logger = RewindingWandbLogger(name="x", project="p", id="abc", save_dir=str(tmp_path), mode="offline")
    assert "anonymous" not in logger._wandb_init  # W&B warns whenever the setting is passed, even as None
    assert RewindingWandbLogger(save_dir=str(tmp_path), mode="offline", anonymous=True)._wandb_init["anonymous"]
