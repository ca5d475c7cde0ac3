"""Reliability 2: a checkpoint is never seen half-written. Killed mid-save or out of disk space, the previous
checkpoint stays loadable, no partial file is left for resume to pick up, and the error says what happened."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import textwrap

import pytest
import torch
from recipe_helpers import compose, tiny
from reliability_helpers import SUBPROCESS_ENV, TINY_GPT, one_thread  # noqa: F401  (autouse: one torch thread)

import recipes.checkpointing
from recipes.atomic import WriteError, atomic_write, remove_stale_temps
from recipes.runs import find_latest

# The child writes checkpoint A, then starts writing B and stops half-way, waiting to be killed.
KILLED_MID_WRITE = textwrap.dedent(
    """
    import io, sys, time, torch
    from recipes.atomic import atomic_write
    path = sys.argv[1]
    atomic_write(path, lambda f: torch.save({"step": 1, "w": torch.ones(1000)}, f))
    def half(f):
        buf = io.BytesIO()
        torch.save({"step": 2, "w": torch.zeros(1000)}, buf)
        f.write(buf.getvalue()[: len(buf.getvalue()) // 2])
        f.flush()
        print("half-written", flush=True)
        time.sleep(60)
    atomic_write(path, half)
    """
)


def test_killed_mid_save_leaves_the_previous_checkpoint(tmp_path):
    target = tmp_path / "checkpoints" / "last.ckpt"
    proc = subprocess.Popen([sys.executable, "-c", KILLED_MID_WRITE, str(target)], env=SUBPROCESS_ENV, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert proc.stdout.readline().strip() == "half-written", proc.stderr.read()
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    assert torch.load(target, weights_only=True)["step"] == 1  # the old content, complete
    assert find_latest(tmp_path) == target  # resume=auto picks the intact file, not the fragment
    assert [p.name for p in remove_stale_temps(target.parent)] == [f".last.ckpt.tmp{proc.pid}"]
    assert sorted(p.name for p in target.parent.iterdir()) == ["last.ckpt"]


def test_disk_full_during_a_save_keeps_the_last_checkpoint_and_says_so(tiny_data, tmp_path, monkeypatch):
    """ENOSPC on the third checkpoint write of a real run: the run stops with one line naming the file and the
    cause; last.ckpt is the previous save, loadable; nothing half-written is left in the folder."""
    writes = []

    def disk_fills_up(path, write, *args):
        writes.append(path)
        if len(writes) < 3:
            return atomic_write(path, write, *args)

        def partial(f):
            f.write(b"PK\x03\x04 half a zip")
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        return atomic_write(path, partial, *args)

    monkeypatch.setattr(recipes.checkpointing, "atomic_write", disk_fills_up)
    steps = [
        "trainer.max_steps=6",
        "checkpoint.every_n_steps=2",
        "trainer.val_check_interval=6",
        "checkpoint.monitor=null",
    ]
    from recipes.train import train

    with pytest.raises(WriteError) as info:
        train(compose(tiny("shakespeare_gpt", tiny_data, tmp_path, *TINY_GPT, *steps)))
    message = str(info.value)
    assert "\n" not in message and info.value.errno == errno.ENOSPC
    assert message.startswith(f"checkpoint: could not write '{tmp_path / 'checkpoints' / 'step00000004.ckpt'}' ")
    assert "(ENOSPC: No space left on device)" in message
    assert "the previous checkpoint there, if any, is unchanged" in message
    ckpts = tmp_path / "checkpoints"
    assert torch.load(ckpts / "last.ckpt", weights_only=True)["global_step"] == 2  # written before the disk filled
    assert sorted(p.name for p in ckpts.iterdir()) == ["last.ckpt", "step00000002.ckpt"]  # no fragment, no temp


def test_atomic_write_error_removes_the_temporary_and_keeps_the_target(tmp_path):
    target = tmp_path / "x.bin"
    atomic_write(target, lambda f: f.write(b"old"))

    def boom(f):
        f.write(b"new but incomplete")
        raise KeyboardInterrupt  # not an OSError: re-raised as is

    with pytest.raises(KeyboardInterrupt):
        atomic_write(target, boom)
    assert target.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["x.bin"]


def test_a_save_due_at_an_epoch_end_is_written_at_that_step(tiny_data, tmp_path):
    """Lightning defers a monitored step save at an epoch's last batch to the next validation, which may be far
    away; the periodic checkpoint (monitor "step") is written at its step."""
    from recipes.train import train

    steps = [
        "trainer.max_steps=7",
        "checkpoint.every_n_steps=4",
        "trainer.val_check_interval=7",
        "checkpoint.keep=-1",
        "data.block_size=16",
        "+data.samples_per_epoch=8",
    ]  # 4 batches per epoch: the save at 4 ends epoch 0
    train(compose(tiny("shakespeare_gpt", tiny_data, tmp_path, *TINY_GPT, *steps)))
    assert torch.load(tmp_path / "checkpoints" / "step00000004.ckpt", weights_only=True)["global_step"] == 4
