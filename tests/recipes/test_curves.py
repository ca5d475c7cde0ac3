"""``python -m recipes.curves``: run folders' CSV logs -> one PNG of mean curves with min-max bands."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from recipes.curves import groups, main
from recipes.studies.report import curve_band
from recipes.studies.results import read_curves


def fake_run(folder: Path, values: list[float], version: int = 0, first_step: int = 100) -> Path:
    """A run folder whose CSV log has ``val/acc`` at steps 100, 200, ... (and a sparse ``lr``)."""
    path = folder / "csv" / f"version_{version}" / "metrics.csv"
    path.parent.mkdir(parents=True)
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["epoch", "step", "val/acc", "lr"])
        w.writeheader()
        for i, v in enumerate(values):
            w.writerow({"epoch": i, "step": first_step + 100 * i, "val/acc": v, "lr": ""})
    return folder


def test_the_band_is_the_mean_and_the_range_of_the_runs(tmp_path: Path) -> None:
    a = read_curves(fake_run(tmp_path / "a", [0.5, 0.7, 0.8]))
    b = read_curves(fake_run(tmp_path / "b", [0.7, 0.9, 0.9]))
    x, mean, lo, hi = curve_band([a, b], "val/acc")
    assert x[0] == 100 and x[-1] == 300
    assert np.allclose(mean[[0, -1]], [0.6, 0.85]) and np.allclose(lo[[0, -1]], [0.5, 0.8]) and np.allclose(hi[[0, -1]], [0.7, 0.9])


def test_labels_group_run_folders() -> None:
    assert groups(["r/s0", "r/s1"]) == {"s0": [Path("r/s0"), Path("r/s1")]}
    assert groups(["a=x/0", "b=y/0", "a=x/1"]) == {"a": [Path("x/0"), Path("x/1")], "b": [Path("y/0")]}


def test_writes_a_png_of_several_keys_on_epochs(tmp_path: Path) -> None:
    runs = [str(fake_run(tmp_path / f"s{i}", [0.5 + i / 10, 0.7, 0.8])) for i in range(2)]
    out = tmp_path / "curves.png"
    assert main([*runs, "--keys", "val/acc", "--x", "epoch", "--steps-per-epoch", "100", "--out", str(out)]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 5000


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--keys", "val/loss"], "--keys: 'val/loss' has fewer than 2 points in 's0'; valid: val/acc"),
        (["--x", "epoch"], "--steps-per-epoch: None; valid: a number > 0 with --x epoch"),
    ],
)
def test_bad_input_is_a_one_line_error(tmp_path: Path, capsys, args: list[str], named: str) -> None:
    run = str(fake_run(tmp_path / "s0", [0.5, 0.7]))
    with pytest.raises(SystemExit) as e:
        main([run, *args, "--out", str(tmp_path / "x.png")])
    assert e.value.code == 2 and capsys.readouterr().err == f"error: {named}\n"
    (tmp_path / "empty").mkdir()
    with pytest.raises(SystemExit) as e:
        main([str(tmp_path / "empty"), "--out", str(tmp_path / "x.png")])
    assert e.value.code == 2 and "has no CSV logs" in capsys.readouterr().err
