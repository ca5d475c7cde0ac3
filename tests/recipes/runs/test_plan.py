"""Run directory and `resume=` resolution."""

from __future__ import annotations

import os
import time

import pytest
import torch

from recipes.runs.plan import META_KEY, RESUMABLE, RUN_ID_FILE, find_latest, launch_rank, plan_run
from resblocks.errors import ConfigError


def fake_ckpt(path, run_id="feedbeef"):
    """What plan_run reads of a checkpoint: the run id, the config and the keys of a resumable training state."""
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {key: {} for key in RESUMABLE}
    torch.save({**state, META_KEY: {"run_id": run_id, "config": {"name": "x"}}}, path)
    return path


def test_fresh_run_writes_a_run_id(tmp_path):
    plan = plan_run(tmp_path / "r", None, rank=0)
    assert not plan.resuming and len(plan.run_id) == 8
    assert (tmp_path / "r" / RUN_ID_FILE).read_text().strip() == plan.run_id


def test_existing_checkpoints_are_never_overwritten_silently(tmp_path):
    fake_ckpt(tmp_path / "checkpoints" / "last.ckpt")
    with pytest.raises(ConfigError, match=r"^resume: run_dir '.*' already holds 1 checkpoint\(s\); valid: resume=auto"):
        plan_run(tmp_path, None, rank=0)
    plan = plan_run(tmp_path, None, overwrite=True, rank=0)
    assert not plan.resuming and not (tmp_path / "checkpoints").exists()


def test_resume_auto_prefers_last_and_keeps_the_run_id(tmp_path):
    fake_ckpt(tmp_path / "checkpoints" / "step00000010.ckpt", "aaaa0000")
    time.sleep(0.01)
    assert find_latest(tmp_path).name == "step00000010.ckpt"
    fake_ckpt(tmp_path / "checkpoints" / "last.ckpt", "cafe0123")
    os.utime(tmp_path / "checkpoints" / "last.ckpt", (1, 1))  # older mtime: last.ckpt still wins
    plan = plan_run(tmp_path, "auto", rank=0)
    assert plan.ckpt_path.name == "last.ckpt" and plan.run_id == "cafe0123"
    assert (tmp_path / RUN_ID_FILE).read_text().strip() == "cafe0123"


def test_resume_auto_takes_a_newer_slurm_preemption_checkpoint(tmp_path):
    fake_ckpt(tmp_path / "checkpoints" / "last.ckpt")
    os.utime(tmp_path / "checkpoints" / "last.ckpt", (1, 1))
    hpc = fake_ckpt(tmp_path / "hpc_ckpt_1.ckpt")
    assert find_latest(tmp_path) == hpc


def test_resume_auto_takes_the_newest_version_of_last(tmp_path):
    # A run folder moved or copied (a study continued in another session): Lightning does not know the
    # last.ckpt there as its own and writes last-v1.ckpt next to it; resuming from the stale one loses steps.
    fake_ckpt(tmp_path / "checkpoints" / "last.ckpt")
    os.utime(tmp_path / "checkpoints" / "last.ckpt", (1, 1))
    newer = fake_ckpt(tmp_path / "checkpoints" / "last-v1.ckpt")
    fake_ckpt(tmp_path / "checkpoints" / "step00000010.ckpt")
    os.utime(tmp_path / "checkpoints" / "step00000010.ckpt", (2, 2))
    assert find_latest(tmp_path) == newer


def test_resume_auto_with_nothing_starts_fresh(tmp_path, capsys):
    plan = plan_run(tmp_path, "auto", rank=0)
    assert not plan.resuming and "starting a new run" in capsys.readouterr().out


def test_resume_path(tmp_path):
    ckpt = fake_ckpt(tmp_path / "elsewhere" / "x.ckpt", "0badf00d")
    plan = plan_run(tmp_path / "run", str(ckpt), rank=0)
    assert plan.ckpt_path == ckpt and plan.run_id == "0badf00d"
    with pytest.raises(ConfigError, match=r"^resume: checkpoint '.*nope.ckpt' not found"):
        plan_run(tmp_path / "run", str(tmp_path / "nope.ckpt"), rank=0)
    (tmp_path / "junk.ckpt").write_bytes(b"not a checkpoint")
    with pytest.raises(ConfigError, match=r"^resume: '.*junk.ckpt' is not a checkpoint \(not the zip archive"):
        plan_run(tmp_path / "run", str(tmp_path / "junk.ckpt"), rank=0)


def test_other_ranks_do_not_touch_the_run_dir(tmp_path):
    fake_ckpt(tmp_path / "checkpoints" / "last.ckpt")
    plan_run(tmp_path, None, overwrite=True, rank=1)
    assert (tmp_path / "checkpoints" / "last.ckpt").exists() and not (tmp_path / RUN_ID_FILE).exists()


@pytest.mark.parametrize(
    ("env", "rank"), [({}, 0), ({"RANK": "3"}, 3), ({"LOCAL_RANK": "1"}, 1), ({"SLURM_PROCID": "0"}, 0)]
)
def test_launch_rank(monkeypatch, env, rank):
    for var in ("RANK", "SLURM_PROCID", "LOCAL_RANK", "NODE_RANK"):
        monkeypatch.delenv(var, raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    assert launch_rank() == rank
