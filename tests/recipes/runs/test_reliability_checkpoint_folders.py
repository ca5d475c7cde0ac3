"""Reliability 2 for checkpoint *folders* (FSDP's sharded checkpoints): written into a hidden staging folder, fsynced,
then renamed into place, so a reader sees the old folder or the new one, never a mix. FSDP needs CUDA, so the real
writer cannot run here: AtomicFSDPStrategy is driven with a fake writer in its parent's place."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from lightning.pytorch.strategies import FSDPStrategy
from reliability_helpers import SUBPROCESS_ENV

from recipes.runs.atomic import WriteError, remove_stale_temps, staged_folder
from recipes.runs.checkpoints import AtomicCheckpointIO, AtomicFSDPStrategy
from recipes.runs.plan import find_latest


def write_shards(folder: Path, step: int, fail_after: int | None = None) -> None:
    """What FSDP's sharded save leaves: a shard per rank and meta.pt (here: 3 files), optionally failing midway."""
    for i, name in enumerate(("__0_0.distcp", "__1_0.distcp", "meta.pt")):
        if fail_after is not None and i == fail_after:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        torch.save({"step": step, "part": name}, folder / name)


def contents(folder: Path) -> dict[str, int]:
    return {p.name: torch.load(p, weights_only=True)["step"] for p in sorted(folder.iterdir())}


def test_a_folder_is_replaced_whole(tmp_path):
    final = tmp_path / "last.ckpt"
    for step in (1, 2):
        with staged_folder(final) as tmp:
            assert tmp.parent == tmp_path and tmp.name == f".last.ckpt.tmp{os.getpid()}"  # hidden, not a *.ckpt
            write_shards(tmp, step)
            if step == 2:
                assert set(contents(final).values()) == {1}  # the old folder is untouched while the new is written
    assert contents(final) == {"__0_0.distcp": 2, "__1_0.distcp": 2, "meta.pt": 2}
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]  # no staging or old folder left


def test_a_failed_folder_write_keeps_the_old_folder_and_says_so(tmp_path):
    final = tmp_path / "last.ckpt"
    with staged_folder(final) as tmp:
        write_shards(tmp, 1)
    with pytest.raises(WriteError) as err, staged_folder(final) as tmp:
        write_shards(tmp, 2, fail_after=2)
    assert str(err.value).startswith(f"checkpoint: could not write '{final}' (ENOSPC: No space left on device)")
    assert "\n" not in str(err.value)
    assert set(contents(final).values()) == {1} and [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]


KILLED_MID_WRITE = textwrap.dedent(
    """
    import sys, time, torch
    from pathlib import Path
    from recipes.runs.atomic import staged_folder
    final = Path(sys.argv[1])
    with staged_folder(final) as tmp:
        torch.save({"step": 1}, tmp / "meta.pt")
    with staged_folder(final) as tmp:
        torch.save({"step": 2}, tmp / "__0_0.distcp")
        print("half-written", flush=True)
        time.sleep(60)
    """
)


def test_killed_mid_folder_write_leaves_the_previous_checkpoint(tmp_path):
    final = tmp_path / "checkpoints" / "last.ckpt"
    proc = subprocess.Popen([sys.executable, "-c", KILLED_MID_WRITE, str(final)], env=SUBPROCESS_ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert proc.stdout.readline().strip() == "half-written", proc.stderr.read()
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    assert contents(final) == {"meta.pt": 1}
    assert find_latest(tmp_path) == final  # resume=auto ignores the staging folder
    assert [p.name for p in remove_stale_temps(final.parent)] == [f".last.ckpt.tmp{proc.pid}"]
    assert [p.name for p in final.parent.iterdir()] == ["last.ckpt"]


def test_killed_between_the_two_renames_the_old_folder_is_put_back(tmp_path):
    """The one moment a folder is not in place: the old version renamed aside, the new one not yet renamed in."""
    folder = tmp_path / "checkpoints"
    (folder / ".last.ckpt.tmp-old4242").mkdir(parents=True)
    torch.save({"step": 1}, folder / ".last.ckpt.tmp-old4242" / "meta.pt")
    (folder / ".last.ckpt.tmp4242").mkdir()  # the complete new version, about to be renamed in
    assert find_latest(tmp_path) is None
    remove_stale_temps(folder)
    assert contents(folder / "last.ckpt") == {"meta.pt": 1} and [p.name for p in folder.iterdir()] == ["last.ckpt"]
    assert find_latest(tmp_path) == folder / "last.ckpt"


@pytest.fixture
def fake_fsdp_writer(monkeypatch):
    """FSDPStrategy.save_checkpoint (the parent AtomicFSDPStrategy calls) replaced by a writer of fake shards."""
    calls: list[Path] = []

    def save_checkpoint(self, checkpoint, filepath, storage_options=None):
        calls.append(Path(filepath))
        if self._state_dict_type == "sharded":
            Path(filepath).mkdir(parents=True, exist_ok=True)
            write_shards(Path(filepath), checkpoint["global_step"], checkpoint.get("fail_after"))
        else:  # "full": Lightning hands one file to checkpoint_io on rank 0
            self.checkpoint_io.save_checkpoint(checkpoint, filepath)

    monkeypatch.setattr(FSDPStrategy, "save_checkpoint", save_checkpoint)
    return calls


def test_fsdp_sharded_checkpoints_are_staged_then_renamed_into_place(tmp_path, fake_fsdp_writer):
    strategy = AtomicFSDPStrategy(state_dict_type="sharded", checkpoint_io=AtomicCheckpointIO())
    final = tmp_path / "step00000004.ckpt"
    strategy.save_checkpoint({"global_step": 4}, final)
    strategy.save_checkpoint({"global_step": 8}, final)
    assert contents(final) == {"__0_0.distcp": 8, "__1_0.distcp": 8, "meta.pt": 8}
    assert all(p.parent == tmp_path and p.name.startswith(".step00000004.ckpt.tmp") for p in fake_fsdp_writer)
    with pytest.raises(WriteError):
        strategy.save_checkpoint({"global_step": 12, "fail_after": 1}, final)
    assert set(contents(final).values()) == {8} and [p.name for p in tmp_path.iterdir()] == [final.name]


def test_fsdp_full_checkpoints_go_through_the_atomic_file_writer(tmp_path, fake_fsdp_writer):
    strategy = AtomicFSDPStrategy(state_dict_type="full", checkpoint_io=AtomicCheckpointIO())
    strategy.save_checkpoint({"global_step": 3}, tmp_path / "last.ckpt")
    assert fake_fsdp_writer == [tmp_path / "last.ckpt"]
    assert torch.load(tmp_path / "last.ckpt", weights_only=True) == {"global_step": 3}
