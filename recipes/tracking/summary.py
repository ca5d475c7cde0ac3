"""The end-of-run summary: printed to the console and written to ``<run_dir>/summary.json``.

It names the run's command-line overrides (in a sweep job: the swept values among them), so a sweep's
summaries tell their variants apart, and records the choices they resolved to (model, shortcut rule with
its options, norm placement, seed), the model's own defaults filled in where the config left them unset.
"""

from __future__ import annotations

import inspect
import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class RunSummary:
    name: str
    run_dir: str
    run_id: str
    steps: int
    seconds: float
    metrics: dict[str, float] = field(default_factory=dict)
    best_checkpoint: str | None = None
    last_checkpoint: str | None = None
    tracker: str | None = None  # where the logger writes (W&B URL / folder, CSV file)
    resumed_from: str | None = None
    sample: str | None = None
    params: int | None = None  # the network's parameter count (tied weights once)
    overrides: list[str] = field(default_factory=list)  # the command line's overrides (Hydra's task overrides)
    choices: dict[str, Any] = field(default_factory=dict)  # model, shortcut, norm, norm_layer, seed as resolved
    diverged: str | None = None  # the divergence guard's line when the run stopped on it (a result, not a crash)

    def metric(self, key: str | None) -> float | None:
        return self.metrics.get(key) if key else None

    def format(self) -> str:
        minutes, seconds = divmod(round(self.seconds), 60)
        variant = f" [{' '.join(self.overrides)}]" if self.overrides else ""
        lines = [f"== {self.name}{variant}: {self.steps} steps in {minutes}m{seconds:02d}s (run id {self.run_id}) =="]
        if self.diverged:
            lines.append(f"diverged: {self.diverged}")
        shown = {k: v for k, v in sorted(self.metrics.items()) if not k.startswith(("perf/", "lr"))}
        for stage in ("train", "val", "test", "frozen"):  # frozen: the kNN / linear-probe evaluation of features
            row = [f"{k.split('/', 1)[1]} {_fmt(v)}" for k, v in shown.items() if k.startswith(stage + "/")]
            if row:
                lines.append(f"{stage:>5}: " + "  ".join(row))
        if self.best_checkpoint:
            lines.append(f" best: {self.best_checkpoint}")
        if self.last_checkpoint:
            lines.append(f" last: {self.last_checkpoint}")
        lines.append(f"  run: {self.run_dir}" + (f" (resumed from {self.resumed_from})" if self.resumed_from else ""))
        if self.tracker:
            lines.append(f"  log: {self.tracker}")
        if self.sample is not None:
            lines += ["sample:", self.sample]
        return "\n".join(lines)

    def write(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self), indent=2) + "\n")


def _fmt(v: float) -> str:
    return f"{v:.4g}" if math.isfinite(v) and abs(v) < 1e5 else f"{v:.3e}"


def hydra_overrides() -> list[str]:
    """The overrides of the Hydra job running now (a sweep job's include its swept values); [] outside Hydra."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return []
    return [str(o) for o in HydraConfig.get().overrides.task]


def resolved_choices(cfg: Any) -> dict[str, Any]:
    """``{model, shortcut, norm, norm_layer, seed}`` as the run builds them: the groups folded into the model's
    options (:func:`recipes.build.model_spec`), the builder's defaults where they are unset; a model without
    such an option (a CNN's norm placement, DenseNet's shortcut) has none."""
    import resblocks

    from ..build import model_spec

    name, opts = model_spec(cfg)
    defaults = resblocks.MODELS.options(name)
    choices: dict[str, Any] = {"model": name}
    for key in ("shortcut", "norm", "norm_layer"):
        value = opts.get(key, defaults.get(key))
        if value is not inspect.Parameter.empty and key in defaults:
            choices[key] = value if isinstance(value, (str, int, float, bool, dict, type(None))) else repr(value)
    choices["seed"] = int(cfg.seed)
    return choices


def collect_metrics(callback_metrics: dict[str, Any]) -> dict[str, float]:
    out = {}
    for key, value in callback_metrics.items():
        try:
            out[key] = float(value)
        except (TypeError, ValueError):
            continue
    return out
