"""``python -m benchmarks.default_parts``: the per-step arithmetic, a recipe run's CPU time, bad input as one line.
(The timings themselves are the benchmark's output, docs/benchmarks.md; nothing here is timed against a goal.)"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from benchmarks import default_parts


def test_per_step_is_the_difference_over_the_extra_steps() -> None:
    assert default_parts.per_step(25.0, 5.0, 200) == pytest.approx(0.1)
    with pytest.raises(ValueError, match="extra_steps"):
        default_parts.per_step(1.0, 1.0, 0)


def test_bare_steps_alternate_both_models() -> None:
    got = default_parts.bare_steps(rounds=2, steps=1)
    assert len(got) == 2 and all(len(v) == 2 and all(t > 0 for t in v) for v in got.values())


def test_a_recipe_run_is_charged_its_own_cpu_time(tmp_path: Path) -> None:
    env = {**os.environ, "RESBLOCKS_CALIBRATE": "0"}
    with pytest.raises(SystemExit, match="recipes.train: exit 2"):  # a bad key: the run's own one-line error
        default_parts.recipe_cpu_seconds(["shortcut=nope", f"run_dir={tmp_path}/run"], env)
    assert default_parts.recipe_cpu_seconds(["--help"], env) > 0.0  # a real child process, its CPU counted


@pytest.mark.parametrize("args", [["--data", "nope.txt"], ["--steps", "0"]])
def test_bad_input_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str]) -> None:
    data = tmp_path / "input.txt"
    data.write_text("hello world\n" * 50)
    argv = [a if a != "nope.txt" else str(tmp_path / a) for a in args]
    if "--data" not in argv:
        argv += ["--data", str(data)]
    assert default_parts.main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: --") and "valid: " in err[0]
