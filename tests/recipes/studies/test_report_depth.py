"""A study's ``depth_profiles``: per-depth diagnostics of the runs' last probed step, tabulated and drawn."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from recipes.studies.report import depth_profile, write_report
from recipes.studies.results import read_run
from recipes.studies.spec import load_study
from resblocks.diagnostics import SubLayerStats
from resblocks.errors import ConfigError

STUDY = """
recipe: fmnist_mae
claim: decaying the identity lowers the effective rank
seeds: 2
baseline: plain
variants:
  plain: {shortcut.alpha_min: 1.0}
  decayed: {shortcut.alpha_min: 0.6}
metrics: [{key: frozen/knn_acc, goal: higher}]
depth_profiles: [effective_rank]
"""
NAMES = ["encoder.blocks.0.attn", "encoder.blocks.0.mlp", "decoder.blocks.0.attn"]


def record(root: Path, variant: str, seed: int, ranks: list[float | None]) -> None:
    folder = root / "runs" / variant / f"seed{seed}"
    (folder / "diagnostics").mkdir(parents=True)
    summary = {"steps": 10, "seconds": 1.0, "params": 100, "metrics": {"frozen/knn_acc": 0.5}}
    (folder / "summary.json").write_text(json.dumps(summary))

    def step(scale: float) -> list[dict]:
        rows = []
        for i, (name, rank) in enumerate(zip(NAMES, ranks)):
            row = SubLayerStats(name, i, len(NAMES), i // 2, 2, 2, effective_rank=math.nan).as_dict()
            row["effective_rank"] = None if rank is None else rank * scale  # NaN is null in history.json
            rows.append(row)
        return rows

    # two probed steps: only the last one (scale 1) counts
    (folder / "diagnostics" / "history.json").write_text(json.dumps([
        {"step": 0, "records": step(100.0)}, {"step": 10, "records": step(1.0)}]))  # fmt: skip


def test_the_last_probe_per_depth_is_tabulated_averaged_over_seeds_and_drawn(tmp_path: Path) -> None:
    path = tmp_path / "study.yaml"
    path.write_text(STUDY)
    spec, root = load_study(str(path)), tmp_path / "study"
    assert spec.depth_profiles == ["effective_rank"]
    record(root, "plain", 0, [10.0, 20.0, 30.0])
    record(root, "plain", 1, [12.0, 22.0, None])
    record(root, "decayed", 0, [4.0, 5.0, 6.0])
    record(root, "decayed", 1, [6.0, 7.0, 8.0])
    names, values = depth_profile([read_run(spec, root, "plain", s) for s in (0, 1)], "effective_rank")
    assert names == NAMES and values.shape == (2, 3) and math.isnan(values[1, 2])
    report = write_report(spec, root).read_text()
    assert "## `effective_rank` per depth (last probed step, mean over seeds)" in report
    assert "| 0 `encoder.blocks.0.attn` | 11 | 5 |" in report  # (10 + 12) / 2 and (4 + 6) / 2
    assert "| 2 `decoder.blocks.0.attn` | 30 | 7 |" in report  # a seed without the number is left out
    assert "![effective_rank per depth](depth_effective_rank.png)" in report
    assert (root / "depth_effective_rank.png").stat().st_size > 1000


def test_runs_without_diagnostics_say_so(tmp_path: Path) -> None:
    path = tmp_path / "study.yaml"
    path.write_text(STUDY)
    spec, root = load_study(str(path)), tmp_path / "study"
    record(root, "plain", 0, [1.0, 2.0, 3.0])
    (root / "runs" / "plain" / "seed0" / "diagnostics" / "history.json").write_text('[{"step": 0, "rec')  # cut short
    report = write_report(spec, root).read_text()
    assert "No finished run recorded it." in report and "depth_effective_rank.png" not in report


@pytest.mark.parametrize(("value", "named"), [("[effective_rnk]", "'effective_rnk'"), ("effective_rank", "'effective_rank'")])
def test_an_unknown_quantity_or_a_bare_string_is_a_one_line_error(tmp_path: Path, value: str, named: str) -> None:
    path = tmp_path / "study.yaml"
    path.write_text(STUDY.replace("[effective_rank]", value))
    with pytest.raises(ConfigError, match=rf"study\.depth_profiles: {named}; valid: a list of x_rms, .*effective_rank"):
        load_study(str(path))
