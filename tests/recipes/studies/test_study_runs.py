"""A tiny study end to end: sequential, parallel (joblib), submitit's local executor, killed and re-run.

Each test runs ``python -m recipes.study`` as a user would (a subprocess: Hydra's launchers own their
processes), on the tiny plays fixture: 2 variants x 2 seeds of a 1-block GPT, a few steps each.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from recipes.studies.spec import load_study

ROOT = Path(__file__).resolve().parents[3]
STUDY = """
recipe: shakespeare_gpt
claim: laurel_rw is no worse than identity
seeds: 2
baseline: identity
overrides:
  data.path: {plays}
  trainer.max_steps: {steps}
  trainer.val_check_interval: 2
  data.val_batches: 2
  sample.tokens: 0
  +model.depth: 1
  +model.dim: 16
  +model.heads: 2
  data.block_size: 16
  data.batch_size: 4
  trainer.log_every_n_steps: 1
  trainer.enable_progress_bar: false
  trainer.enable_model_summary: false
  trainer.precision: 32-true
  trainer.accelerator: cpu
  checkpoint.every_n_steps: 2
  logger: csv
variants:
  identity: {{}}
  laurel_rw: {{shortcut: laurel_rw}}
metrics: [{{key: val/loss, goal: lower}}]
checks: [{{a: laurel_rw, b: identity, metric: val/loss, expect: not_greater, margin: 0.5}}]
"""


@pytest.fixture
def study(tmp_path: Path, tiny_data: dict[str, Path]):
    def make(steps: int = 4) -> tuple[Path, Path]:
        path = tmp_path / "tiny.yaml"
        path.write_text(STUDY.format(plays=tiny_data["plays"], steps=steps))
        return path, tmp_path / "study"

    return make


def study_cmd(path: Path, root: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "recipes.study", f"study={path}", f"root={root}", *extra]


def env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}


def finished(root: Path) -> dict[tuple[str, int], float]:
    """``{(variant, seed): mtime of summary.json}`` of the finished runs."""
    return {(p.parts[-3], int(p.parts[-2][4:])): p.stat().st_mtime for p in root.glob("runs/*/seed*/summary.json")}


def assert_complete(root: Path) -> None:
    assert set(finished(root)) == {(v, s) for v in ("identity", "laurel_rw") for s in (0, 1)}
    report = (root / "report.md").read_text()
    assert "| `laurel_rw` | 2 |" in report and "## Verdict" in report
    assert "**holds**" in report or "**not resolved**" in report or "**does not hold**" in report
    assert (root / "final_val_loss.png").stat().st_size > 1000
    for p in root.glob("runs/*/seed*/summary.json"):
        run = json.loads(p.read_text())
        assert run["steps"] == 4 and run["metrics"]["val/loss"] > 0


@pytest.mark.slow
def test_sequential_study_writes_the_report(study) -> None:
    path, root = study()
    out = subprocess.run(study_cmd(path, root), env=env(), capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    assert_complete(root)
    again = subprocess.run(study_cmd(path, root), env=env(), capture_output=True, text=True, timeout=600)
    assert again.returncode == 0 and "4 finished run(s) kept, 0 to run" in again.stdout
    assert "min wall for this invocation" in (root / "report.md").read_text()
    # A report on demand names the command that runs the study, and no wall time of its own.
    only = subprocess.run(study_cmd(path, root, "report_only=true"), env=env(), capture_output=True, text=True,
                          timeout=600)  # fmt: skip
    assert only.returncode == 0, only.stderr[-2000:]
    report = (root / "report.md").read_text()
    assert f"**Command:** `python -m recipes.study study={path} root={root}`\n" in report and "min wall" not in report
    # Other settings than the finished runs were made with: refused, nothing mixed, nothing runs.
    other = subprocess.run(study_cmd(path, root, "trainer.max_steps=5"), env=env(), capture_output=True, text=True,
                           timeout=600)  # fmt: skip
    assert other.returncode == 2 and "was made with other settings (trainer.max_steps=4, trainer.max_steps=5)" in other.stderr


@pytest.mark.slow
def test_joblib_launcher_runs_the_study_in_parallel(study) -> None:
    path, root = study()
    out = subprocess.run(study_cmd(path, root, "launcher=joblib", "jobs=2"), env=env(), capture_output=True,
                         text=True, timeout=600)  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    assert_complete(root)
    hydra = (root / "runs/identity/seed0/.hydra/hydra.yaml").read_text()
    assert "JoblibLauncher" in hydra  # the runs went through Hydra's joblib launcher


@pytest.mark.slow
def test_submitit_local_executor_runs_the_study(study) -> None:
    path, root = study()
    out = subprocess.run(study_cmd(path, root, "launcher=submitit_local"), env=env(), capture_output=True,
                         text=True, timeout=900)  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    assert_complete(root)
    assert list(root.glob("runs/.submitit/*")), "submitit's job folder is missing"


@pytest.mark.slow
def test_a_killed_study_finishes_without_retraining_finished_runs(study) -> None:
    path, root = study(steps=4)
    proc = subprocess.Popen(study_cmd(path, root), env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)  # fmt: skip
    deadline = time.time() + 300
    while time.time() < deadline and not finished(root):
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)  # the study and its training process, in the middle of the second run
    proc.wait()
    first = finished(root)
    assert 1 <= len(first) < 4
    out = subprocess.run(study_cmd(path, root), env=env(), capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    assert_complete(root)
    after = finished(root)
    assert all(after[k] == t for k, t in first.items()), "a finished run was trained again"


@pytest.mark.parametrize(
    "args, message",
    [
        (["study=nope"], r"^error: study: unknown study 'nope'; valid: "),
        (["variants=[identity,x]"], r"^error: variants: unknown variant 'x' of study 'tiny'; valid: identity, laurel_rw"),
        (["launcher=slurmish"], r"^error: launcher: 'slurmish'; valid: basic, joblib, submitit_local, submitit_slurm"),
        (["optim.lrr=0.1"], r"^error: variant identity: .*optim\.lrr"),
        (["shortcut=nope"], r"^error: variant identity: .*nope"),
    ],
)
def test_bad_input_fails_in_one_line_before_anything_runs(study, args: list[str], message: str) -> None:
    import re

    path, root = study()
    cmd = study_cmd(path, root, *args)
    if args[0].startswith("study="):
        cmd = [c for c in cmd if not c.startswith("study=/")]
    out = subprocess.run(cmd, env=env(), capture_output=True, text=True, timeout=300)
    assert out.returncode == 2
    assert len(out.stderr.strip().splitlines()) == 1 and re.match(message, out.stderr.strip()), out.stderr
    assert not root.exists()


def test_dry_run_prints_the_grid(study) -> None:
    path, root = study()
    out = subprocess.run(study_cmd(path, root, "dry_run=true"), env=env(), capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "2 variants x 2 seeds = 4 runs, 4 to run" in out.stdout and "laurel_rw: " in out.stdout
    assert not root.exists() and load_study(str(path)).name == "tiny"
