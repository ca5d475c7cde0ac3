"""The study report: ``<root>/report.md`` with per-variant statistics, paired differences to the baseline,
the claim's verdict, and matplotlib pictures (curves with a band over seeds, final metric with CIs; with the
study's ``depth_profiles``, each diagnostics quantity per depth at the runs' last probed step)."""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np

from .results import RunResult, by_seed, diverged_seeds, read_results
from .spec import StudySpec
from .stats import Summary, divergence_verdict, paired, verdict

CURVE_POINTS = 200  # curves are resampled on a common step grid for the band


def _fmt(x: float, digits: int = 4) -> str:
    return "n/a" if x is None or not math.isfinite(x) else f"{x:.{digits}g}"


def _ci(s: Summary) -> str:
    return "n/a" if not math.isfinite(s.lo) else f"[{_fmt(s.lo)}, {_fmt(s.hi)}]"


Curves = dict[str, list[tuple[int, float]]]  # metric -> [(step, value)], as results.read_curves returns them


def curve_band(runs: list[Curves], key: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None:
    """``(steps, mean, lo, hi)`` of ``key`` over the runs' curves (min/max band), on the steps all runs share."""
    series = [np.array(c[key]) for c in runs if len(c.get(key, ())) >= 2]
    if not series:
        return None
    end = min(s[-1, 0] for s in series)
    start = max(s[0, 0] for s in series)
    if end <= start:
        return None
    grid = np.linspace(start, end, CURVE_POINTS)
    ys = np.stack([np.interp(grid, s[:, 0], s[:, 1]) for s in series])
    return grid, ys.mean(0), ys.min(0), ys.max(0)


Band = tuple[str, np.ndarray, np.ndarray, np.ndarray, np.ndarray]  # (label, x, mean, lo, hi)


def draw_bands(bands: list[Band], path: Path, *, xlabel: str, ylabel: str, title: str, depth: bool = False) -> bool:
    """One line per variant with a shaded band; ``depth``: markers and integer ticks (sub-layers, not steps)."""
    if not bands:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=100)
    for label, x, mean, lo, hi in bands:
        (line,) = ax.plot(x, mean, label=label, linewidth=1.4, **({"marker": "o", "markersize": 3} if depth else {}))
        ax.fill_between(x, lo, hi, color=line.get_color(), alpha=0.2, linewidth=0)
    if depth:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10 if len(title) < 70 else 9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return True


def draw_curves(spec: StudySpec, results: list[RunResult], key: str, path: Path) -> bool:
    bands = []
    for v in spec.variants:
        band = curve_band([r.curves for r in results if r.variant == v], key)
        if band is not None:
            bands.append((v, *band))
    return draw_bands(bands, path, xlabel="step", ylabel=key, title=f"{spec.name}: {key} (mean; band: min-max over seeds)")


def depth_profile(runs: list[RunResult], quantity: str) -> tuple[list[str], np.ndarray] | None:
    """``(sub-layer names, values[run, sub-layer])`` of a diagnostics quantity at each run's last probed step
    (NaN where a run did not record it); ``None`` when no run has it. Sub-layers in network order, as the
    first run with records lists them."""
    runs = [r for r in runs if r.depth]
    if not runs:
        return None
    names = [rec["name"] for rec in sorted(runs[0].depth, key=lambda rec: rec["index"])]

    def value(r: RunResult, name: str) -> float:
        rec = next((x for x in r.depth if x["name"] == name), {})
        v = rec.get(quantity)
        return math.nan if v is None else float(v)

    values = np.array([[value(r, n) for n in names] for r in runs])
    return (names, values) if np.isfinite(values).any() else None


Profiles = dict[str, tuple[list[str], np.ndarray]]  # variant -> (sub-layer names, values[seed, sub-layer])


def variant_profiles(spec: StudySpec, results: list[RunResult], quantity: str) -> Profiles:
    """``depth_profile`` of each variant that has one, in the study's order."""
    profiles = {v: depth_profile([r for r in results if r.variant == v], quantity) for v in spec.variants}
    return {v: p for v, p in profiles.items() if p is not None}


def draw_depth(spec: StudySpec, profiles: Profiles, quantity: str, path: Path) -> bool:
    bands = []
    for v, (_, vals) in profiles.items():
        with np.errstate(all="ignore"):  # a sub-layer no seed recorded stays NaN (a gap in the line)
            bands.append((f"{v} (n={len(vals)})", np.arange(vals.shape[1]), np.nanmean(vals, 0), np.nanmin(vals, 0),
                          np.nanmax(vals, 0)))  # fmt: skip
    return draw_bands(bands, path, xlabel="residual sub-layer (network order; names in the report's table)",
                       ylabel=quantity, depth=True,
                       title=f"{spec.name}: {quantity} per depth, last probed step (band: min-max over seeds)")  # fmt: skip


def depth_table(profiles: Profiles, quantity: str) -> list[str]:
    """A markdown table: one row per sub-layer, the mean over seeds of ``quantity`` per variant."""
    if not profiles:
        return []
    names = next(iter(profiles.values()))[0]
    lines = [f"## `{quantity}` per depth (last probed step, mean over seeds)", "",
             "| sub-layer | " + " | ".join(f"`{v}` (n={len(p[1])})" for v, p in profiles.items()) + " |",
             "|---|" + "---|" * len(profiles)]  # fmt: skip
    for i, name in enumerate(names):
        cells = []
        for vnames, vals in profiles.values():
            col = vals[:, vnames.index(name)] if name in vnames else np.array([math.nan])
            cells.append(_fmt(float(np.nanmean(col)) if np.isfinite(col).any() else math.nan))
        lines.append(f"| {i} `{name}` | " + " | ".join(cells) + " |")
    return [*lines, ""]


def draw_finals(spec: StudySpec, results: list[RunResult], key: str, path: Path) -> bool:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names, means, errs, points = [], [], [], []
    for v in spec.variants:
        vals = list(by_seed(results, v, key).values())
        if not vals:
            continue
        s = Summary.of(vals)
        names.append(v)
        means.append(s.mean)
        errs.append([s.mean - s.lo, s.hi - s.mean] if math.isfinite(s.lo) else [0.0, 0.0])
        points.append(vals)
    if not names:
        return False
    fig, ax = plt.subplots(figsize=(max(4.0, 0.9 * len(names) + 2), 3.6), dpi=100)
    x = np.arange(len(names))
    ax.errorbar(x, means, yerr=np.array(errs).T, fmt="o", capsize=4, color="black", label="mean, 95% CI")
    for i, vals in enumerate(points):
        ax.scatter(np.full(len(vals), i) + 0.12, vals, s=12, alpha=0.6, label="seeds" if i == 0 else None)
    ax.set_xticks(x, names, rotation=20, ha="right", fontsize=8)
    ax.set_ylabel(key)
    ax.set_title(f"{spec.name}: final {key}", fontsize=10)
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return True


def write_report(
    spec: StudySpec, root: Path, *, seeds: list[int] | None = None, command: str = "", wall_seconds: float | None = None
) -> Path:
    """Write ``root/report.md`` and its pictures from whatever runs have finished; returns the report's path."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    results = read_results(spec, root, seeds)
    done = [r for r in results if r.finished]
    diverged = [r for r in done if r.diverged]
    lines = [f"# Study `{spec.name}`", ""]
    if spec.paper:
        lines += [f"**Paper:** {spec.paper}", ""]
    lines += [f"**Claim:** {spec.claim}", ""]
    if spec.scaled_down:
        lines += [f"**Scaled down from the paper:** {spec.scaled_down}", ""]
    lines += [
        f"**Runs:** {len(done)} of {len(results)} finished"
        + (f", {len(diverged)} of them by diverging" if diverged else "")
        + f" (variants x seeds {sorted({r.seed for r in results})}); "
        f"base recipe `{spec.recipe}`" + (f", shared overrides `{' '.join(spec.overrides)}`" if spec.overrides else ""),
        "",
    ]
    if command:
        lines += [f"**Command:** `{command}`", ""]
    total = sum(r.seconds for r in done if math.isfinite(r.seconds))
    lines += [f"**Time:** {total / 60:.1f} min of training summed over runs"
              + (f", {wall_seconds / 60:.1f} min wall for this invocation" if wall_seconds else "") + ".", ""]  # fmt: skip
    lines += ["## Variants", "", "| variant | overrides | runs | parameters | vs baseline | s/step |",
              "|---|---|---|---|---|---|"]  # fmt: skip
    params = {v: next((r.params for r in done if r.variant == v and r.params), None) for v in spec.variants}
    for v, ov in spec.variants.items():
        rs = [r for r in done if r.variant == v]
        sps = Summary.of([r.seconds_per_step for r in rs if math.isfinite(r.seconds_per_step)])
        p, p0 = params[v], params[spec.baseline]
        extra = f"+{p - p0:,}" if p is not None and p0 is not None and v != spec.baseline else ""
        k = sum(1 for r in rs if r.diverged)
        runs = f"{len(rs)}" + (f" ({k} diverged)" if k else "")
        lines.append(f"| `{v}`{' (baseline)' if v == spec.baseline else ''} | `{' '.join(ov) or '(none)'}` | "
                     f"{runs} | {'' if p is None else f'{p:,}'} | {extra} | {_fmt(sps.mean, 3)} |")  # fmt: skip
    for m in spec.metrics:
        lines += ["", f"## `{m.key}` ({m.goal} is better)", "",
                  f"| variant | n | mean | std | 95% CI | minus `{spec.baseline}`, paired by seed | 95% CI |",
                  "|---|---|---|---|---|---|---|"]  # fmt: skip
        base = by_seed(done, spec.baseline, m.key)
        for v in spec.variants:
            vals = by_seed(done, v, m.key)
            s = Summary.of(list(vals.values()))
            d = paired(vals, base) if v != spec.baseline else None
            diff = "" if d is None else _fmt(d.mean)
            lines.append(f"| `{v}` | {s.n} | {_fmt(s.mean)} | {_fmt(s.std, 2)} | {_ci(s)} | {diff} | "
                         f"{'' if d is None else _ci(d)} |")  # fmt: skip
    if spec.checks:
        lines += ["", "## Verdict", "", "| check | difference (a - b), paired | 95% CI | seeds | verdict |",
                  "|---|---|---|---|---|"]  # fmt: skip
        goals = {m.key: m.goal for m in spec.metrics}
        for c in spec.checks:
            a, b = by_seed(done, c.a, c.metric), by_seed(done, c.b, c.metric)
            a_div, b_div = diverged_seeds(done, c.a), diverged_seeds(done, c.b)
            d = paired(a, b)
            decided = divergence_verdict(c.expect, goals.get(c.metric, ""), set(a), a_div, set(b), b_div)
            seeds = f"{d.n}" + "".join(f"; {n} diverged at {sorted(x)}" for n, x in ((c.a, a_div), (c.b, b_div)) if x)
            if decided:
                seeds += " (a diverged run counts as worse than any finished one)"
            lines.append(f"| {c.describe()} | {_fmt(d.mean)} | {_ci(d)} | {seeds} | "
                         f"**{decided or verdict(d, c.expect, c.margin)}** |")  # fmt: skip
    completed = [r for r in done if not r.diverged]  # a diverged run's curve stops early: kept out of the bands
    profiles = {q: variant_profiles(spec, completed, q) for q in spec.depth_profiles}
    for q, per_variant in profiles.items():
        table = depth_table(per_variant, q)
        lines += ["", *table] if table else ["", f"## `{q}` per depth", "", "No finished run recorded it.", ""]
    pictures = []
    keys = sorted({k for r in done for k in r.curves if k.startswith(("train/", "val/")) and not k.startswith("perf/")})
    wanted = [k for k in keys if k.split("/", 1)[1] in {m.key.split("/", 1)[-1] for m in spec.metrics} | {"loss"}]
    for key in wanted:
        name = f"curves_{key.replace('/', '_')}.png"
        if draw_curves(spec, completed, key, root / name):
            pictures.append((f"{key} over training", name))
    for m in spec.metrics:
        name = f"final_{m.key.replace('/', '_')}.png"
        if draw_finals(spec, done, m.key, root / name):
            pictures.append((f"final {m.key}", name))
    for q, per_variant in profiles.items():
        name = f"depth_{q}.png"
        if draw_depth(spec, per_variant, q, root / name):
            pictures.append((f"{q} per depth", name))
    diag = sorted(root.glob("runs/*/seed*/diagnostics/*.png"))
    if pictures or diag:
        lines += ["", "## Pictures", ""]
        lines += [f"![{title}]({name})" for title, name in pictures]
        lines += [f"- diagnostics: [{p.relative_to(root)}]({p.relative_to(root)})" for p in diag]
    if diverged:
        lines += ["", "## Diverged runs", "", *[f"- `{r.variant}` seed {r.seed}: {r.diverged}" for r in diverged]]
    failed = [r for r in results if not r.finished and r.folder.exists()]
    if failed:
        lines += ["", "## Unfinished runs", "", *[f"- `{r.variant}` seed {r.seed}: `{r.folder}`" for r in failed]]
    lines += ["", f"_Written {time.strftime('%Y-%m-%d %H:%M')} by `recipes.study`._", ""]
    path = root / "report.md"
    path.write_text("\n".join(lines))
    return path


__all__ = ["Curves", "curve_band", "draw_bands", "depth_profile", "depth_table", "draw_curves", "draw_depth", "draw_finals", "variant_profiles",
           "write_report"]
