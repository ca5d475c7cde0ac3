"""Shared by the reliability tests (``test_reliability_*.py``): a tiny GPT, one intra-op thread, a simulated crash."""

from __future__ import annotations

import os
import sys

import pytest
import torch
from lightning.pytorch.callbacks import Callback
from recipe_helpers import ROOT

TINY_GPT = ["+model.depth=1", "+model.dim=32", "+model.heads=2", "data.val_batches=1", "sample.tokens=0"]
# Subprocesses: the repo importable, one thread (as in this process, see one_thread).
SUBPROCESS_ENV = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}


@pytest.fixture(autouse=True)
def one_thread():
    """One intra-op thread for every test of a module that imports this fixture: as fast as two on a tiny model
    (two are 100x slower on a machine whose other core is busy), and the same float reduction order here as in
    the subprocesses."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def call_main(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture, *argv: str) -> tuple[int, list[str]]:
    """``python -m recipes.train ARGV`` in this process: ``(exit status, stderr lines)``; other exceptions propagate."""
    import recipes.train

    monkeypatch.setenv("HYDRA_MAIN_MODULE", "__main__")  # conf/ relative to recipes/train.py, as under `python -m`
    for var in ("RESBLOCKS_DEBUG", "HYDRA_FULL_ERROR"):  # main() sets both; monkeypatch restores them afterwards
        monkeypatch.setenv(var, "0")
    monkeypatch.setattr(recipes.train, "_task_started", False)
    monkeypatch.setattr(sys, "argv", ["recipes.train", *argv])
    capsys.readouterr()
    try:
        recipes.train.main()
    except SystemExit as e:
        return int(e.code or 0), capsys.readouterr().err.splitlines()
    return 0, capsys.readouterr().err.splitlines()


class Crash(Exception):
    pass


class CrashAt(Callback):
    """Kills training (an exception, like a crash) once ``global_step`` reaches ``step``."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.global_step == self.step:
            raise Crash(f"simulated crash at step {self.step}")
