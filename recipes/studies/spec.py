"""A study as data: ``conf/study/<name>.yaml`` read into a checked :class:`StudySpec`.

A study names a base recipe, the overrides every run shares, a set of named variants (each a set of
ordinary recipe overrides), the seeds, the metrics to compare (lower or higher is better), the
baseline variant, and the claim under test: in words, and as paired checks ``a`` vs ``b`` on a metric
with the expected direction (:mod:`recipes.studies.stats`). Every (variant, seed) pair is one ordinary
``recipes.train`` run with its own run directory.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from resblocks.diagnostics.record import QUANTITIES
from resblocks.errors import ConfigError

from .stats import EXPECTATIONS

STUDY_DIR = Path(__file__).resolve().parents[2] / "conf" / "study"
GOALS = ("lower", "higher")


@dataclass(frozen=True)
class Metric:
    """A logged metric (``summary.json`` key, e.g. ``val/loss``) and which way is better."""

    key: str
    goal: str = "lower"


@dataclass(frozen=True)
class Check:
    """One part of the claim: ``metric(a) - metric(b)`` is expected to be ``expect`` (``less``, ``greater``, ...)."""

    a: str
    b: str
    metric: str
    expect: str
    margin: float = 0.0

    def describe(self) -> str:
        words = {"less": "<", "greater": ">", "not_greater": "<=", "not_less": ">="}[self.expect]
        tol = f" (margin {self.margin:g})" if self.expect.startswith("not_") else ""
        return f"{self.metric}: {self.a} {words} {self.b}{tol}"


@dataclass(frozen=True)
class StudySpec:
    name: str
    recipe: str
    claim: str
    variants: dict[str, list[str]]  # name -> recipe overrides
    seeds: list[int]
    baseline: str
    metrics: list[Metric]
    checks: list[Check]
    overrides: list[str] = field(default_factory=list)  # shared by every run
    paper: str = ""
    scaled_down: str = ""  # what was made smaller than the paper, in words
    minutes_per_run: float | None = None  # measured here, for dry_run's estimate
    # residual-diagnostics quantities (``SubLayerStats`` fields, e.g. ``effective_rank``) the report compares per
    # depth, from each run's last probed step (``diagnostics/history.json``)
    depth_profiles: list[str] = field(default_factory=list)

    def runs(self) -> list[tuple[str, int]]:
        """Every (variant, seed), seeds innermost: a partial study has all variants at the first seeds."""
        return [(v, s) for s in self.seeds for v in self.variants]

    def run_overrides(self, variant: str, seed: int) -> list[str]:
        return [f"recipe={self.recipe}", *self.overrides, *self.variants[variant], f"seed={seed}"]


def override_value(value: Any) -> str:
    """A YAML value written as a Hydra override value (``null``, ``true``, ``[1,2]``, quoted odd strings)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(override_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ",".join(f"{k}:{override_value(v)}" for k, v in value.items()) + "}"
    text = str(value)
    if any(c in text for c in " ,[]{}()='\""):
        return "'" + text.replace("'", "\\'") + "'"
    return text


def as_overrides(mapping: Any, key: str) -> list[str]:
    """``{model: cifar_resnet56, optim.lr: 0.1}`` or ``["model=...", ...]`` -> ``["model=cifar_resnet56", ...]``."""
    if mapping is None:
        return []
    if isinstance(mapping, (list, tuple)):
        bad = [o for o in mapping if not (isinstance(o, str) and "=" in o)]
        if bad:
            raise ConfigError(f"{key}: {bad[0]!r} is not an override; valid: 'key=value' strings or a mapping")
        return list(mapping)
    if isinstance(mapping, dict):
        return [f"{k}={override_value(v)}" for k, v in mapping.items()]
    raise ConfigError(f"{key}: {mapping!r}; valid: a mapping of overrides or a list of 'key=value'")


def list_studies() -> list[str]:
    return sorted(p.stem for p in STUDY_DIR.glob("*.yaml"))


def load_study(name: str, directory: Path = STUDY_DIR) -> StudySpec:
    """Read and check ``<directory>/<name>.yaml`` (or ``name`` itself if it is a ``.yaml`` path: your own study);
    one-line ``ConfigError`` naming the key on any problem."""
    path = Path(name) if name.endswith((".yaml", ".yml")) else directory / f"{name}.yaml"
    if name.endswith((".yaml", ".yml")) and not path.is_file():
        raise ConfigError(f"study: no such file {name!r}; valid: a study name or the path of a study YAML")
    if not path.is_file():
        valid = sorted(p.stem for p in directory.glob("*.yaml"))
        raise ConfigError(f"study: unknown study {name!r}; valid: {', '.join(valid) or '(none)'}")
    try:
        raw = OmegaConf.to_container(OmegaConf.load(path), resolve=True)
    except Exception as e:  # a YAML syntax error: one line with where it is
        raise ConfigError(f"study: {path.name} is not valid YAML ({' '.join(str(e).split())})") from e
    if not isinstance(raw, dict):
        raise ConfigError(f"study: {path} is not a mapping")
    known = {"name", "recipe", "claim", "variants", "seeds", "baseline", "metrics", "checks", "overrides", "paper",
             "scaled_down", "minutes_per_run", "depth_profiles"}  # fmt: skip
    for key in raw:
        if key not in known:
            raise ConfigError(f"study.{key}: unknown key in {path.name}; valid: {', '.join(sorted(known))}")
    for key in ("recipe", "claim", "variants", "seeds", "baseline", "metrics"):
        if key not in raw:
            raise ConfigError(f"study.{key}: missing in {path.name}")
    variants = raw["variants"]
    if not isinstance(variants, dict) or not variants:
        raise ConfigError("study.variants: valid: a mapping of variant name -> overrides, at least one")
    variants = {str(k): as_overrides(v, f"study.variants.{k}") for k, v in variants.items()}
    seeds = raw["seeds"]
    if isinstance(seeds, int):
        seeds = list(range(seeds))
    if not (isinstance(seeds, list) and seeds and all(isinstance(s, int) for s in seeds) and len(set(seeds)) == len(seeds)):
        raise ConfigError(f"study.seeds: {seeds!r}; valid: a count or a list of distinct integers")
    baseline = raw["baseline"]
    if baseline not in variants:
        raise ConfigError(f"study.baseline: {baseline!r}; valid: {', '.join(variants)}")
    metrics = []
    for m in raw["metrics"]:
        m = {"key": m} if isinstance(m, str) else m
        if not isinstance(m, dict) or "key" not in m or m.get("goal", "lower") not in GOALS:
            raise ConfigError(f"study.metrics: {m!r}; valid: {{key: val/loss, goal: lower|higher}}")
        metrics.append(Metric(str(m["key"]), str(m.get("goal", "lower"))))
    checks = []
    for c in raw.get("checks") or []:
        if not isinstance(c, dict) or not {"a", "b", "metric", "expect"} <= c.keys():
            raise ConfigError(f"study.checks: {c!r}; valid: {{a, b, metric, expect[, margin]}}")
        for side in ("a", "b"):
            if c[side] not in variants:
                raise ConfigError(f"study.checks.{side}: {c[side]!r}; valid: {', '.join(variants)}")
        if c["expect"] not in EXPECTATIONS:
            raise ConfigError(f"study.checks.expect: {c['expect']!r}; valid: {', '.join(EXPECTATIONS)}")
        if c["metric"] not in {m.key for m in metrics}:
            raise ConfigError(f"study.checks.metric: {c['metric']!r}; valid: {', '.join(m.key for m in metrics)}")
        checks.append(Check(c["a"], c["b"], c["metric"], c["expect"], float(c.get("margin", 0.0))))
    profiles = raw.get("depth_profiles") or []
    bad = [profiles] if not isinstance(profiles, list) else [q for q in profiles if q not in QUANTITIES]
    if bad:
        raise ConfigError(f"study.depth_profiles: {bad[0]!r}; valid: a list of {', '.join(QUANTITIES)}")
    return StudySpec(
        name=str(raw.get("name", path.stem)),
        recipe=str(raw["recipe"]),
        claim=str(raw["claim"]).strip(),
        variants=variants,
        seeds=seeds,
        baseline=baseline,
        metrics=metrics,
        checks=checks,
        overrides=as_overrides(raw.get("overrides"), "study.overrides"),
        paper=str(raw.get("paper", "")).strip(),
        scaled_down=str(raw.get("scaled_down", "")).strip(),
        minutes_per_run=raw.get("minutes_per_run"),
        depth_profiles=[str(q) for q in profiles],
    )


__all__ = ["Check", "Metric", "STUDY_DIR", "StudySpec", "as_overrides", "list_studies", "load_study", "override_value"]
