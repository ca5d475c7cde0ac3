"""What a study's runs left behind: final metrics (``summary.json``), curves (``csv/version_*/metrics.csv``),
parameter counts and step times, read back for the report."""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hydra_plugins.resblocks_study.study_sweeper import run_dir

from .spec import StudySpec


@dataclass
class RunResult:
    variant: str
    seed: int
    folder: Path
    finished: bool
    metrics: dict[str, float] = field(default_factory=dict)
    seconds: float = math.nan
    steps: int = 0
    params: int | None = None
    curves: dict[str, list[tuple[int, float]]] = field(default_factory=dict)  # metric -> [(step, value)]
    diverged: str | None = None  # the divergence guard's line: finished (not run again), but no final metrics
    depth: list[dict[str, Any]] = field(default_factory=list)  # the last probed step's per-sub-layer records

    @property
    def seconds_per_step(self) -> float:
        return self.seconds / self.steps if self.steps else math.nan


def read_curves(folder: Path) -> dict[str, list[tuple[int, float]]]:
    """Every logged metric over steps, from all CSV log versions of a run (a resumed run has several)."""
    rows: dict[str, dict[int, float]] = {}
    for path in sorted((folder / "csv").glob("version_*/metrics.csv"), key=lambda p: int(p.parent.name.split("_")[1])):
        with path.open(newline="") as f:
            for row in csv.DictReader(f):
                try:
                    step = int(float(row.get("step") or "nan"))
                except ValueError:
                    continue
                for key, value in row.items():
                    if key in ("step", "epoch") or value in (None, ""):
                        continue
                    try:
                        rows.setdefault(key, {})[step] = float(value)  # a later version wins (it resumed there)
                    except ValueError:
                        continue
    return {k: sorted(v.items()) for k, v in rows.items()}


def read_run(spec: StudySpec, root: Path, variant: str, seed: int) -> RunResult:
    folder = run_dir(root, variant, seed)
    summary = folder / "summary.json"
    result = RunResult(variant, seed, folder, finished=summary.is_file(), curves=read_curves(folder))
    if result.finished:
        data = json.loads(summary.read_text())
        result.metrics = {k: float(v) for k, v in data.get("metrics", {}).items()}
        result.seconds, result.steps = float(data.get("seconds", math.nan)), int(data.get("steps", 0))
        result.params = data.get("params")
        result.diverged = data.get("diverged")
        if spec.depth_profiles:  # only a study that compares depth profiles reads the diagnostics history
            result.depth = read_last_probe(folder)
    return result


def read_last_probe(folder: Path) -> list[dict[str, Any]]:
    """The per-sub-layer records (``SubLayerStats.as_dict()``, NaN as null) of the last probed step in the run's
    ``diagnostics/history.json`` (written by ``ResidualDiagnostics`` at the end of fit); ``[]`` without one."""
    path = folder / "diagnostics" / "history.json"
    try:
        rows = json.loads(path.read_text())
    except (OSError, ValueError):  # no diagnostics, or a file cut short: the report leaves the run out
        return []
    return list(rows[-1].get("records", [])) if rows else []


def read_results(spec: StudySpec, root: Path, seeds: list[int] | None = None) -> list[RunResult]:
    return [read_run(spec, root, v, s) for s in (seeds if seeds is not None else spec.seeds) for v in spec.variants]


def by_seed(results: list[RunResult], variant: str, metric: str) -> dict[int, float]:
    """``{seed: final value}`` of ``metric`` over the finished runs of ``variant`` (diverged runs and non-finite
    values kept out)."""
    out = {}
    for r in results:
        if r.variant == variant and r.finished and not r.diverged and math.isfinite(r.metrics.get(metric, math.nan)):
            out[r.seed] = r.metrics[metric]
    return out


def diverged_seeds(results: list[RunResult], variant: str) -> set[int]:
    """The seeds at which ``variant``'s run stopped on a divergence."""
    return {r.seed for r in results if r.variant == variant and r.finished and r.diverged}


__all__ = ["RunResult", "by_seed", "diverged_seeds", "read_curves", "read_results", "read_run"]
