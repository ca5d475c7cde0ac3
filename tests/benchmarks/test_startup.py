"""``python -m benchmarks.startup``: the first-step mark is read from the child's output; bad input is one line.
(The timings themselves are the benchmark's output, docs/benchmarks.md; nothing here is timed.)"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from benchmarks import startup


def test_first_step_time_comes_from_the_mark(monkeypatch):
    code = f"import time; print('noise'); print('{startup.MARK}' + repr(time.time() + 100.0))"
    wall, cpu = startup.timed([sys.executable, "-c", code], {}, first_step=True)
    assert 99.0 < wall < 101.0 and cpu >= 0.0  # the printed time, not the process's end
    wall, _ = startup.timed([sys.executable, "-c", "pass"], {})
    assert 0.0 < wall < 60.0


def test_missing_data_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert startup.main(["--data", str(tmp_path / "nope.txt")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: --data: ") and "valid: " in err[0]
