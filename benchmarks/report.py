"""Results, goals and the two report formats (markdown table and JSON)."""

from __future__ import annotations

import json
import operator
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .timing import Timings, fmt_time

_OPS = {"<=": operator.le, ">=": operator.ge, "<": operator.lt, ">": operator.gt}


@dataclass(frozen=True)
class Goal:
    """``value <op> target``, e.g. ``Goal("<=", 1.05)``."""

    op: str
    target: float

    def __post_init__(self) -> None:
        if self.op not in _OPS:
            raise ValueError(f"goal.op: {self.op!r}; valid: {', '.join(_OPS)}")

    def met(self, value: float) -> bool:
        return bool(_OPS[self.op](value, self.target))

    def __str__(self) -> str:
        return f"{self.op} {self.target:g}"


@dataclass
class Result:
    """One row of the report.

    ``value`` is what the goal is checked against: a ratio (``unit="x"``), a percentage, a fraction.
    ``reference`` / ``candidate`` say what was compared, with their absolute measurements.
    ``iqr`` is the inter-quartile range of ``value`` over the timing rounds, where there were rounds.
    """

    group: str
    name: str
    metric: str
    value: float | None  # None: not applicable (the notes say why)
    unit: str = "x"
    dtype: str = ""
    reference: str = ""
    candidate: str = ""
    iqr: tuple[float, float] | None = None
    goal: Goal | None = None
    notes: str = ""
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def met(self) -> bool | None:
        return None if self.goal is None or self.value is None else self.goal.met(self.value)

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["goal"] = None if self.goal is None else {"op": self.goal.op, "target": self.goal.target, "text": str(self.goal)}
        out["iqr"] = None if self.iqr is None else list(self.iqr)
        out["met"] = self.met
        return out


def ratio_result(
    timings: Timings, candidate: str, reference: str, *, group: str, name: str, goal: Goal | None = None,
    cand_label: str | None = None, ref_label: str | None = None, **fields: Any,
) -> Result:
    """A time-ratio row ``candidate / reference`` from interleaved timings (median per-round ratio and IQR)."""
    value, iqr = timings.ratio(candidate, reference)
    data = {
        "candidate_s": timings.seconds[candidate], "reference_s": timings.seconds[reference],
        "inner": {"candidate": timings.inner[candidate], "reference": timings.inner[reference]},
        **fields.pop("data", {}),
    }  # fmt: skip
    return Result(
        group=group, name=name, metric=fields.pop("metric", "time ratio"), value=value, iqr=iqr, goal=goal,
        reference=f"{ref_label or reference}: {fmt_time(timings.median(reference))}",
        candidate=f"{cand_label or candidate}: {fmt_time(timings.median(candidate))}",
        data=data, **fields,
    )  # fmt: skip


def fmt_value(value: float | None, unit: str) -> str:
    if value is None:
        return "n/a"
    if unit == "x":
        return f"{value:.3f}x"
    if unit == "%":
        return f"{value:+.1f}%"
    if unit == "pp":
        return f"{value:+.2f} pp"
    return f"{value:.4g}{(' ' + unit) if unit else ''}"


def _met_text(r: Result) -> str:
    if r.goal is not None and r.value is None:
        return "n/a"
    return "" if r.met is None else ("yes" if r.met else "**no**")


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


COLUMNS = ("Benchmark", "dtype", "Reference", "Candidate", "Value", "IQR", "Goal", "Met", "Notes")


def markdown_table(results: Sequence[Result]) -> str:
    """One table row per result, grouped by benchmark group (a sub-heading each)."""
    lines: list[str] = []
    groups = list(dict.fromkeys(r.group for r in results))
    for group in groups:
        lines += [f"### {group}", "", "| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
        for r in results:
            if r.group != group:
                continue
            iqr = "" if r.iqr is None else f"{fmt_value(r.iqr[0], r.unit)} - {fmt_value(r.iqr[1], r.unit)}"
            cells = (
                f"{r.name} ({r.metric})", r.dtype, r.reference, r.candidate, fmt_value(r.value, r.unit), iqr,
                "" if r.goal is None else str(r.goal), _met_text(r), r.notes,
            )  # fmt: skip
            lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
        lines.append("")
    return "\n".join(lines)


def goals_summary(results: Sequence[Result]) -> str:
    with_goal = [r for r in results if r.goal is not None and r.value is not None]
    missed = [r for r in with_goal if not r.met]
    lines = [f"Goals: {len(with_goal) - len(missed)} of {len(with_goal)} met."]
    lines += [f"- missed: {r.group} / {r.name} [{r.dtype}]: {fmt_value(r.value, r.unit)} (goal {r.goal})" for r in missed]
    return "\n".join(lines)


def meta_lines(meta: dict[str, Any]) -> list[str]:
    m = meta["machine"]
    load, t = meta.get("load", {}), meta["timing"]
    return [
        f"- command: `{meta['command']}`",
        f"- date: {m['date']}; mode: {meta['mode']}; wall time: {meta.get('wall_s', 0):.0f} s",
        f"- machine: {m['cpu']} ({m['cpu_count']} CPUs, torch threads {m['torch_threads']}); GPU: {m['gpu'] or 'none'}; "
        f"device: {m['device']}; fast bf16: {m['bf16_fast']}",
        f"- torch {m['torch']}, Python {m['python']}, {m['platform']}",
        f"- load average (1/5/15 min) before: {load.get('before')}, after: {load.get('after')}",
        f"- timing: {t['rounds']} rounds, {t['warmup']} warm-up calls, samples of >= {t['min_sample_s']} s, "
        f"clock: {t['clock']} ({'process CPU time' if t['clock'] == 'cpu' else 'elapsed time'})",
    ]


def write_reports(results: Sequence[Result], meta: dict[str, Any], out_dir: Path) -> tuple[Path, Path]:
    """``results.md`` and ``results.json`` in ``out_dir``; returns their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    md = out_dir / "results.md"
    js = out_dir / "results.json"
    body = ["# Benchmark results", "", *meta_lines(meta), "", markdown_table(results), goals_summary(results), ""]
    md.write_text("\n".join(body))
    js.write_text(json.dumps({"meta": meta, "results": [r.to_json() for r in results]}, indent=2) + "\n")
    return md, js


__all__ = ["COLUMNS", "Goal", "Result", "fmt_value", "goals_summary", "markdown_table", "ratio_result", "write_reports"]
