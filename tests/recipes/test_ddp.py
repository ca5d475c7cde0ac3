"""Two-process DDP on the CPU (gloo): disjoint data per rank, identical weights, the documented command works.

Each test is one subprocess (Lightning's DDP relaunches the command it was started with, which must
not be pytest itself); each costs two Lightning imports (~5 s each).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from recipe_helpers import ROOT

DDP = ["trainer.accelerator=cpu", "trainer.devices=2", "trainer.strategy=ddp", "trainer.enable_progress_bar=false",
       "trainer.enable_model_summary=false", "logger=csv", "data.augment=false", "test=false"]  # fmt: skip


def run_ddp(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("MASTER_PORT", None)
    return subprocess.run(args, check=False, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def test_two_ranks_see_disjoint_data_and_end_identical(tiny_data, tmp_path):
    overrides = ["recipe=fmnist_resnet20", f"data.path={tiny_data['fmnist']}", "data.batch_size=4",
                 "trainer.max_steps=3", "trainer.limit_val_batches=1", f"run_dir={tmp_path / 'run'}", *DDP]  # fmt: skip
    probe = Path(__file__).with_name("ddp_probe.py")
    proc = run_ddp([sys.executable, str(probe), str(tmp_path), *overrides], tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [r["world"] for r in ranks] == [2, 2]
    seen0, seen1 = (r["samples"] for r in ranks)
    assert len(seen0) == len(seen1) == 3 * 4  # 3 steps of 4 samples per rank
    assert len(set(seen0)) == 12 and not set(seen0) & set(seen1), "ranks must see disjoint samples"
    assert ranks[0]["weights"] == ranks[1]["weights"], "DDP ranks must end with identical weights"
    assert (tmp_path / "run" / "checkpoints" / "last.ckpt").exists()


def test_documented_ddp_command(tiny_data, tmp_path):
    """`python -m recipes.train ... trainer.devices=2 trainer.strategy=ddp`: Hydra + Lightning's relaunch."""
    args = [sys.executable, "-m", "recipes.train", "recipe=shakespeare_gpt", f"data.path={tiny_data['plays']}",
            "trainer.max_steps=2", "trainer.val_check_interval=2", "data.val_batches=1", "data.batch_size=2",
            "+model.depth=1", "+model.dim=32", "+model.heads=2", "sample.tokens=0", *DDP[:-2]]  # fmt: skip
    proc = run_ddp(args, tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    heads = [line for line in proc.stdout.splitlines() if line.startswith("== shakespeare_gpt [")]
    assert len(heads) == 1 and "]: 2 steps in " in heads[0], proc.stdout  # one summary (naming its overrides), rank 0
    run_dir = tmp_path / "runs" / "shakespeare_gpt"
    assert (run_dir / "checkpoints" / "last.ckpt").exists() and (run_dir / ".hydra" / "config.yaml").exists()
    assert json.loads((run_dir / "summary.json").read_text())["steps"] == 2
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["shakespeare_gpt"]  # no stray per-rank dirs
