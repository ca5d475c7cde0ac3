"""Reliability 7: in a 2-process CPU DDP run, one rank raising an exception ends the whole job with a non-zero exit
status within 60 seconds (no rank left hanging in a collective), and last.ckpt is the last complete checkpoint."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch
from recipe_helpers import CPU
from reliability_helpers import SUBPROCESS_ENV, TINY_GPT

PROBE = Path(__file__).with_name("fault_probe.py")


def test_a_failing_rank_ends_the_job_within_a_minute(tiny_data, tmp_path):
    """Rank 1 (a process Lightning relaunched) raises at step 5 while rank 0 waits in a collective."""
    run_dir = tmp_path / "run"
    overrides = ["recipe=shakespeare_gpt", f"data.path={tiny_data['plays']}", "data.batch_size=2", *TINY_GPT,
                 "trainer.max_steps=50", "checkpoint.every_n_steps=2", "trainer.val_check_interval=50",
                 "checkpoint.monitor=null", "logger=csv", f"run_dir={run_dir}", *CPU,
                 "trainer.devices=2", "trainer.strategy=ddp"]  # fmt: skip
    env = {k: v for k, v in SUBPROCESS_ENV.items() if k not in ("MASTER_PORT", "MASTER_ADDR")}
    proc = subprocess.Popen([sys.executable, str(PROBE), "1", "5", *overrides], cwd=tmp_path, env=env,
                            start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        deadline = time.monotonic() + 180  # startup: two Lightning imports, the process group
        while time.monotonic() < deadline and proc.poll() is None and not (run_dir / "checkpoints").is_dir():
            time.sleep(0.1)
        training = time.monotonic()  # step 2 is saved: the failure at step 5 is moments away
        _, err = proc.communicate(timeout=60)
        while _alive(proc.pid) and time.monotonic() - training < 60:
            time.sleep(0.2)
        assert not _alive(proc.pid), "a rank is still running a minute after the failure"
    finally:
        if _alive(proc.pid):
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode != 0 and "injected failure on rank 1 at step 5" in err, err[-3000:]
    last = torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert last["global_step"] == 4  # the last save before the failure, complete
    assert not [p.name for p in (run_dir / "checkpoints").iterdir() if p.name.startswith(".")]


def _alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True
