"""``python -m benchmarks.run --smoke`` runs every group and writes a well-formed markdown table and JSON.

The numbers are not checked against the goals (a 2-core shared CPU at tiny sizes says nothing
about speed); the structure is: every group present, one table row per result, machine recorded.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from benchmarks import run
from benchmarks.report import COLUMNS

RESULT_KEYS = {"group", "name", "metric", "value", "unit", "dtype", "reference", "candidate", "iqr", "goal", "met", "notes"}


@pytest.fixture(scope="module")
def smoke(tiny_data: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> tuple[int, Path]:
    out = tmp_path_factory.mktemp("bench")
    threads = torch.get_num_threads()
    argv = [
        "--smoke", "--threads", "1", "--out", str(out),
        "--data-path", f"fmnist={tiny_data['fmnist']}", "--data-path", f"shakespeare={tiny_data['plays']}",
    ]  # fmt: skip
    try:
        code = run.main(argv)
    finally:
        torch.set_num_threads(threads)
    return code, out


def test_every_group_runs(smoke: tuple[int, Path]) -> None:
    code, out = smoke
    report = json.loads((out / "results.json").read_text())
    assert report["meta"]["failures"] == {}
    assert code == 0
    assert [r["group"] for r in report["results"]] == sorted(
        (r["group"] for r in report["results"]), key=run.GROUPS.index
    )  # grouped, in the documented order
    assert {r["group"] for r in report["results"]} == set(run.GROUPS)


def test_json_records_machine_and_rows(smoke: tuple[int, Path]) -> None:
    report = json.loads((smoke[1] / "results.json").read_text())
    meta = report["meta"]
    assert meta["command"].startswith("python -m benchmarks.run --smoke")
    for key in ("cpu", "cpu_count", "torch_threads", "gpu", "torch", "device", "date"):
        assert key in meta["machine"]
    assert meta["machine"]["torch_threads"] == 1 and meta["machine"]["torch"] == torch.__version__
    assert len(meta["load"]["before"]) == 3 and meta["timing"]["rounds"] == run.TIMING["smoke"][0]
    for r in report["results"]:
        assert RESULT_KEYS <= set(r), r
        assert r["dtype"], r["name"]  # every row says what precision it measured
        if r["value"] is None:
            assert r["notes"].startswith("not applicable"), r  # e.g. a rank wider than the network, not an error
            continue
        assert math.isfinite(r["value"]), r
        if r["metric"] == "time ratio":
            assert r["value"] > 0 and r["iqr"][0] <= r["value"] <= r["iqr"][1]
            assert r["data"]["candidate_s"] and len(r["data"]["candidate_s"]) == len(r["data"]["reference_s"])
        if r["goal"] is not None:
            assert r["met"] == {"<=": r["value"] <= r["goal"]["target"], ">=": r["value"] >= r["goal"]["target"]}[r["goal"]["op"]]


def test_markdown_has_one_row_per_result(smoke: tuple[int, Path]) -> None:
    md = (smoke[1] / "results.md").read_text()
    report = json.loads((smoke[1] / "results.json").read_text())
    header = "| " + " | ".join(COLUMNS) + " |"
    assert md.count(header) == len(run.GROUPS)  # one table per group
    for group in run.GROUPS:
        assert f"### {group}" in md
    rows = [line for line in md.splitlines() if line.startswith("| ") and line != header]
    assert len(rows) == len(report["results"])
    assert all(line.count(" | ") == len(COLUMNS) - 1 for line in rows)  # no stray pipes in cells
    assert "python -m benchmarks.run --smoke" in md and "Goals:" in md and "load average" in md


def test_bad_group_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        run.parse_args(["--only", "blocks,nope"])
    assert "--only: unknown group 'nope'; valid: blocks" in capsys.readouterr().err
