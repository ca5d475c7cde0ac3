"""Reliability 2: a checkpoint is never seen half-written. Killed mid-save or out of disk space, the previous
checkpoint stays loadable, no partial file is left for resume to pick up, and the error says what happened."""

from __future__ import annotations

import errno
import io
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from recipe_helpers import compose, tiny
from reliability_helpers import SUBPROCESS_ENV, TINY_GPT, one_thread  # noqa: F401  (autouse: one torch thread)

import recipes.runs.atomic
import recipes.runs.checkpoints
from recipes.runs.atomic import WriteError, atomic_write, remove_stale_temps
from recipes.runs.plan import find_latest

# The child writes checkpoint A, then starts writing B and stops half-way, waiting to be killed.
KILLED_MID_WRITE = textwrap.dedent(
    """
    import io, sys, time, torch
    from recipes.runs.atomic import atomic_write
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

    monkeypatch.setattr(recipes.runs.checkpoints, "atomic_write", disk_fills_up)
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


class FillsUpAfter(io.FileIO):
    """A file on a disk that fills up (``errno``) once ``room`` bytes are written."""

    room = 2000
    code = errno.ENOSPC

    def write(self, data):
        if self.tell() + len(memoryview(data)) > self.room:
            raise OSError(self.code, os.strerror(self.code))
        return super().write(data)


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EDQUOT, errno.EIO])
def test_a_failed_write_that_torch_reports_as_its_own_error_is_the_one_line_error(tmp_path, monkeypatch, code):
    """torch's zip writer turns the OSError of a failed write into ``RuntimeError: [enforce fail at
    inline_container.cc] ... unexpected pos``; it still gets the one line with the errno, the temporary file
    goes, the previous checkpoint stays."""
    target = tmp_path / "last.ckpt"
    atomic_write(target, lambda f: torch.save({"step": 1}, f), "checkpoint")
    failing = type("Failing", (FillsUpAfter,), {"code": code})
    monkeypatch.setattr(recipes.runs.atomic, "open", lambda path, mode: io.BufferedWriter(failing(path, "w")), raising=False)
    with pytest.raises(WriteError) as info:
        atomic_write(target, lambda f: torch.save({"step": 2, "w": torch.zeros(10_000)}, f), "checkpoint")
    assert isinstance(info.value.__cause__, RuntimeError) and "unexpected pos" in str(info.value.__cause__)
    name = errno.errorcode[code]
    assert str(info.value) == (
        f"checkpoint: could not write '{target}' ({name}: {os.strerror(code)}); the previous checkpoint there, "
        "if any, is unchanged"
    )
    assert info.value.errno == code
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]
    assert torch.load(target, weights_only=True)["step"] == 1


def test_a_full_disk_in_a_real_run_is_one_line(tiny_data, tmp_path, monkeypatch):
    """The same through a training run: the disk fills up while torch writes the checkpoint of step 4."""
    real_open = open

    def disk_full_at_step_4(path, mode):
        if "step00000004" in str(path):
            return io.BufferedWriter(FillsUpAfter(path, "w"))
        return real_open(path, mode)

    monkeypatch.setattr(recipes.runs.atomic, "open", disk_full_at_step_4, raising=False)
    steps = ["trainer.max_steps=6", "checkpoint.every_n_steps=2", "trainer.val_check_interval=6",
             "checkpoint.monitor=null"]  # fmt: skip
    from recipes.train import train

    with pytest.raises(WriteError, match=r"^checkpoint: could not write '.*step00000004\.ckpt' \(ENOSPC: No space"):
        train(compose(tiny("shakespeare_gpt", tiny_data, tmp_path, *TINY_GPT, *steps)))
    ckpts = tmp_path / "checkpoints"
    assert sorted(p.name for p in ckpts.iterdir()) == ["last.ckpt", "step00000002.ckpt"]
    assert torch.load(ckpts / "last.ckpt", weights_only=True)["global_step"] == 2


# The child trains with keep=1 and is SIGKILLed as it renames step 4's periodic checkpoint into place.
KILLED_AT_ROTATION = textwrap.dedent(
    """
    import os, signal, sys
    sys.path.insert(0, sys.argv[1])
    import recipes.runs.checkpoints as checkpointing
    from recipe_helpers import compose
    from recipes.train import train
    rename = checkpointing.replace_path
    def killed_at(src, dst):
        if dst.name == "step00000004.ckpt":
            os.kill(os.getpid(), signal.SIGKILL)
        rename(src, dst)
    checkpointing.replace_path = killed_at
    train(compose(sys.argv[2:]))
    """
)


def test_a_kill_during_rotation_leaves_a_periodic_checkpoint(tiny_data, tmp_path):
    """keep=1: the new periodic checkpoint is published before the old one is deleted, so a kill at the rename
    (or a failed publish) leaves the old one, complete; resume=auto goes on from there."""
    steps = ["trainer.max_steps=6", "checkpoint.every_n_steps=2", "trainer.val_check_interval=6",
             "checkpoint.monitor=null", "checkpoint.keep=1"]  # fmt: skip
    overrides = tiny("shakespeare_gpt", tiny_data, tmp_path, *TINY_GPT, *steps)
    here = str(Path(__file__).parents[1])  # tests/recipes: recipe_helpers
    proc = subprocess.run([sys.executable, "-c", KILLED_AT_ROTATION, here, *overrides], env=SUBPROCESS_ENV,
                          capture_output=True, text=True, timeout=300, check=False)  # fmt: skip
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    ckpts = tmp_path / "checkpoints"
    periodic = sorted(p.name for p in ckpts.glob("step*.ckpt"))
    assert periodic == ["step00000002.ckpt"], sorted(p.name for p in ckpts.iterdir())
    assert torch.load(ckpts / "step00000002.ckpt", weights_only=True)["global_step"] == 2
    from recipes.train import train

    summary = train(compose([*overrides, "resume=auto"]))  # from last.ckpt: step 4, published before the kill
    assert summary.steps == 6 and torch.load(ckpts / "step00000006.ckpt", weights_only=True)["global_step"] == 6
