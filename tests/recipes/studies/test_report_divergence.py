"""A study report from constructed run records: diverged runs are counted, listed and decide a check."""

from __future__ import annotations

import json
from pathlib import Path

from recipes.studies.report import write_report
from recipes.studies.spec import load_study

STUDY = """
recipe: shakespeare_gpt
claim: Post-LN without warm-up trains worse
seeds: 3
baseline: warm
variants:
  warm: {sched.warmup_steps: 500}
  cold: {sched.warmup_steps: 0}
  other: {optim.lr: 0.01}
metrics: [{key: val/loss, goal: lower}]
checks:
  - {a: cold, b: warm, metric: val/loss, expect: greater}
  - {a: other, b: warm, metric: val/loss, expect: greater}
"""


def record(root: Path, variant: str, seed: int, loss: float | None, steps: int = 100) -> None:
    folder = root / "runs" / variant / f"seed{seed}"
    folder.mkdir(parents=True)
    summary = {"steps": steps, "seconds": 10.0, "params": 1000, "metrics": {"val/loss": loss or 9.0}}
    if loss is None:
        summary["diverged"] = f"divergence: non-finite loss (nan) at step {steps}; run stopped"
    (folder / "summary.json").write_text(json.dumps(summary))


def test_diverged_runs_are_counted_listed_and_worse_than_any_finished_run(tmp_path: Path) -> None:
    path = tmp_path / "study.yaml"
    path.write_text(STUDY)
    spec, root = load_study(str(path)), tmp_path / "study"
    for s in range(3):
        record(root, "warm", s, 1.5 + 0.01 * s)
        record(root, "cold", s, None, steps=40 + s)  # diverged at every seed: its recorded 9.0 is not a result
    record(root, "other", 0, None)
    record(root, "other", 1, 1.4)
    record(root, "other", 2, 1.45)
    report = (write_report(spec, root)).read_text()
    assert "9 of 9 finished, 4 of them by diverging" in report
    assert "| `cold` | `sched.warmup_steps=0` | 3 (3 diverged) |" in report
    assert "| `cold` | 0 | n/a |" in report  # no final value enters the statistics
    cold = next(line for line in report.splitlines() if line.startswith("| val/loss: cold > warm"))
    assert "cold diverged at [0, 1, 2]" in cold and cold.endswith("**holds** |")
    other = next(line for line in report.splitlines() if line.startswith("| val/loss: other > warm"))
    assert "| 2; other diverged at [0] |" in other and "**not resolved**" in other  # the finished pairs decide
    assert "## Diverged runs" in report and "- `cold` seed 2: divergence: non-finite loss (nan) at step 42" in report
