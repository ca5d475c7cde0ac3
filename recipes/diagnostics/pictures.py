"""Pictures of the residual diagnostics (matplotlib, Agg: ``Figure.savefig``, no pyplot, no display needed).

From a training history (``[(step, [SubLayerStats, ...]), ...]``, one entry per probed step):

* ``grad_rms.png`` and ``update_ratio.png``: depth x step heatmaps (log colour scale) of the RMS of
  ``dL/dx`` and of ``||out - s|| / ||s||``;
* ``shortcut_state.png``: each learned or fixed weight of the rules (``SubLayerStats.state``) against step,
  one line per depth (against depth where there is one step only);
* ``profile.png``: the last step's per-depth profile: stream RMS, update ratio, gradient RMS (and the
  effective rank where recorded).

And from a lesion study: ``lesion.png``, the validation metrics with each block deleted in turn.
Every function returns the path written, or ``None`` when there is nothing to draw. Files are small
(6.4 x 4 inches at 100 dpi).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.ticker import FormatStrFormatter

from resblocks.diagnostics import LesionResult, SubLayerStats

History = Sequence[tuple[int, Sequence[SubLayerStats]]]
DPI = 100
LABELS = {
    "grad_rms": "RMS of dL/dx at the sub-layer input",
    "update_ratio": "update ratio ||out - s|| / ||s||",
    "x_rms": "stream RMS (x entering)",
    "out_rms": "RMS of the output",
    "f_rms": "RMS of F (as the rule receives it)",
    "effective_rank": "effective rank of the output",
}


def _figure(
    width: float = 6.4, height: float = 4.0, margins: dict[str, float] | None = None, **subplots: Any
) -> tuple[Any, Any]:
    """A figure with fixed margins (matplotlib's constrained layout would cost twice the drawing)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=DPI)
    axes = fig.subplots(**subplots) if subplots else fig.add_subplot()
    fig.subplots_adjust(**{"left": 0.1, "right": 0.97, "bottom": 0.13, "top": 0.88, "wspace": 0.35, "hspace": 0.5,
                           **(margins or {})})  # fmt: skip
    return fig, axes


def _save(fig: Any, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    return path


def _depth_label(records: Sequence[SubLayerStats]) -> str:
    per_block = records[0].per_block if records else 1
    return "residual sub-layer (network order)" + (f", {per_block} per block" if per_block > 1 else "")


def _edges(values: Sequence[float]) -> np.ndarray:
    """Cell edges around sorted centres (for pcolormesh with uneven steps)."""
    v = np.asarray(values, dtype=float)
    if len(v) == 1:
        return np.array([v[0] - 0.5, v[0] + 0.5])
    mid = (v[1:] + v[:-1]) / 2
    return np.concatenate([[v[0] - (mid[0] - v[0])], mid, [v[-1] + (v[-1] - mid[-1])]])


def matrix(history: History, quantity: str) -> tuple[list[int], list[int], np.ndarray]:
    """``(steps, sub-layer indices, values [depth, step])`` of one quantity (NaN where not recorded)."""
    steps = [step for step, _ in history]
    depths = sorted({r.index for _, recs in history for r in recs})
    row = {d: i for i, d in enumerate(depths)}
    out = np.full((len(depths), len(steps)), np.nan)
    for j, (_, recs) in enumerate(history):
        for r in recs:
            out[row[r.index], j] = getattr(r, quantity)
    return steps, depths, out


def heatmap(history: History, quantity: str, path: Path, title: str = "") -> Path | None:
    """Depth x step heatmap of ``quantity`` (log colour scale; NaN cells grey)."""
    from matplotlib.colors import LogNorm

    if not history:
        return None
    steps, depths, values = matrix(history, quantity)
    positive = values[np.isfinite(values) & (values > 0)]
    if positive.size == 0:
        return None
    fig, ax = _figure(margins={"right": 0.9})
    masked = np.ma.masked_invalid(np.where(values > 0, values, np.nan))
    cmap = _cmap("magma")
    mesh = ax.pcolormesh(_edges(steps), _edges(depths), masked, norm=LogNorm(positive.min(), positive.max()), cmap=cmap)
    ax.set_facecolor("0.85")
    ax.set_xlabel("training step")
    ax.set_ylabel(_depth_label(history[-1][1]))
    ax.set_title(title or LABELS.get(quantity, quantity), fontsize=10)
    fig.colorbar(mesh, ax=ax, label=quantity)
    return _save(fig, path)


def _cmap(name: str) -> Any:
    import matplotlib

    return matplotlib.colormaps[name].with_extremes(bad="0.85")


def state_keys(history: History) -> list[str]:
    keys: list[str] = []
    for _, recs in history:
        for r in recs:
            keys += [k for k in r.state if k not in keys]
    return keys


def shortcut_state(history: History, path: Path, title: str = "") -> Path | None:
    """Every state entry against step, one line per depth coloured by depth (against depth for one step)."""
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    keys = state_keys(history)
    if not history or not keys:
        return None
    cols = min(3, len(keys))
    rows = math.ceil(len(keys) / cols)
    height = 3.0 * rows + 0.6
    margins = {"left": 0.08, "right": 0.86 if len(history) > 1 else 0.97, "bottom": 0.5 / height + 0.08,
               "top": 1 - 0.6 / height}  # fmt: skip
    fig, axes = _figure(min(4.0 * cols, 12.0) + 1.0, height, margins, nrows=rows, ncols=cols, squeeze=False)
    depths = sorted({r.index for _, recs in history for r in recs})
    norm, cmap = Normalize(min(depths), max(max(depths), min(depths) + 1)), _cmap("viridis")
    steps = [s for s, _ in history]
    for ax, key in zip(axes.flat, keys):
        if len(history) == 1:
            recs = [r for r in history[0][1] if key in r.state]
            ax.plot([r.index for r in recs], [r.state[key] for r in recs], "o-", ms=3)
            ax.set_xlabel(_depth_label(history[0][1]))
        else:
            for d in depths:
                ys = [next((r.state.get(key, np.nan) for r in recs if r.index == d), np.nan) for _, recs in history]
                if np.isfinite(ys).any():
                    ax.plot(steps, ys, color=cmap(norm(d)), lw=1)
            ax.set_xlabel("training step")
        ax.set_title(key, fontsize=9)
    for ax in list(axes.flat)[len(keys) :]:
        ax.set_visible(False)
    if len(history) > 1:
        fig.colorbar(ScalarMappable(norm, cmap), cax=fig.add_axes((0.89, 0.15, 0.02, 0.7)), label="sub-layer")
    fig.suptitle(title or "shortcut weights (each rule's state())", fontsize=10)
    return _save(fig, path)


def profile(records: Mapping[str, Sequence[SubLayerStats]], path: Path, title: str = "") -> Path | None:
    """Per-depth profile of one step, one line per label: stream RMS, update ratio, gradient RMS (log scales),
    and the effective rank where recorded."""
    records = {k: v for k, v in records.items() if v}
    if not records:
        return None
    panels = ["x_rms", "update_ratio", "grad_rms"]
    if any(math.isfinite(r.effective_rank) for recs in records.values() for r in recs):
        panels.append("effective_rank")
    top = 0.8 if len(records) == 1 else 0.7  # room for the legend under the title
    fig, axes = _figure(
        3.2 * len(panels), 3.4 if len(records) == 1 else 3.7,
        {"left": 0.07, "right": 0.98, "bottom": 0.15, "top": top, "wspace": 0.4}, ncols=len(panels), squeeze=False,
    )  # fmt: skip
    for ax, q in zip(axes.flat, panels):
        for label, recs in records.items():
            xs = [r.index for r in recs]
            ys = [getattr(r, q) for r in recs]
            ax.plot(xs, ys, "o-", ms=2.5, lw=1, label=label)
        values = [getattr(r, q) for recs in records.values() for r in recs]
        positive = [v for v in values if math.isfinite(v) and v > 0]
        if q != "effective_rank" and positive and max(positive) > 20 * min(positive):  # a log scale where it spans
            ax.set_yscale("log")
        else:
            ax.yaxis.set_major_formatter(FormatStrFormatter("%.3g"))  # no "1e-5" offset over the title
        ax.set_title(LABELS[q], fontsize=9)
        ax.set_xlabel("sub-layer")
    if len(records) > 1:
        _legend(fig, axes, top)
    fig.suptitle(title or "per-depth profile", fontsize=10)
    return _save(fig, path)


def lesion(
    studies: Mapping[str, tuple[Mapping[str, float], Sequence[LesionResult]]], path: Path, title: str = ""
) -> Path | None:
    """The metrics after deleting each unit (a block) in turn, one line per label; the intact value dashed.
    Units that cannot be deleted (a plain net's stage change) are gaps."""
    studies = {k: v for k, v in studies.items() if v[1]}
    if not studies:
        return None
    metrics = [m for m in ("loss", "acc") if any(m in base for base, _ in studies.values())]
    metrics = metrics or sorted({m for base, _ in studies.values() for m in base})
    top = 0.7
    margins = {"left": 0.1, "right": 0.98, "bottom": 0.15, "top": top}
    fig, axes = _figure(4.2 * len(metrics), 3.7, margins, ncols=len(metrics), squeeze=False)
    for ax, m in zip(axes.flat, metrics):
        for i, (label, (base, results)) in enumerate(studies.items()):
            color = f"C{i}"
            ax.plot([r.unit for r in results], [r.get(m) for r in results], "o-", ms=3, lw=1, color=color, label=label)
            if m in base:
                ax.axhline(base[m], color=color, ls="--", lw=0.8)
        ax.set_xlabel("deleted block")
        ax.set_title({"loss": "validation loss", "acc": "validation accuracy"}.get(m, m), fontsize=9)
        if m == "loss":
            ax.set_yscale("log")
    _legend(fig, axes, top, "dashed: nothing deleted")
    fig.suptitle(title or "lesion study (Veit et al. 2016): one block deleted at a time", fontsize=10)
    return _save(fig, path)


def _legend(fig: Any, axes: Any, top: float, note: str = "") -> None:
    """One legend for all panels, centred between the title and the panels."""
    handles, labels = axes.flat[0].get_legend_handles_labels()
    if note:
        handles, labels = [*handles, _blank()], [*labels, note]
    fig.legend(handles, labels, loc="lower center", bbox_to_anchor=(0.5, top + 0.075), ncols=len(labels), fontsize=8,
               frameon=False)  # fmt: skip


def _blank() -> Any:
    from matplotlib.lines import Line2D

    return Line2D([], [], color="0.4", ls="--", lw=0.8)


def write_pictures(history: History, out_dir: str | Path, title: str = "") -> dict[str, Path]:
    """The history's pictures in ``out_dir``: ``{name: path}`` for those that had something to draw (the
    heatmaps need two probed steps or more; ``shortcut_state`` a rule with weights)."""
    out_dir = Path(out_dir)
    prefix = f"{title}: " if title else ""
    over_steps = len(history) > 1  # one probed step is the profile alone: no heatmap of a single column
    written = {
        "grad_rms": heatmap(history, "grad_rms", out_dir / "grad_rms.png", prefix + LABELS["grad_rms"])
        if over_steps
        else None,
        "update_ratio": heatmap(history, "update_ratio", out_dir / "update_ratio.png", prefix + LABELS["update_ratio"])
        if over_steps
        else None,
        "shortcut_state": shortcut_state(history, out_dir / "shortcut_state.png", prefix + "shortcut weights"),
        "profile": profile(
            {title or "final": history[-1][1]} if history else {},
            out_dir / "profile.png",
            f"{prefix}per-depth profile at step {history[-1][0]}" if history else "",
        ),
    }
    return {k: v for k, v in written.items() if v is not None}


__all__ = ["History", "heatmap", "lesion", "matrix", "profile", "shortcut_state", "state_keys", "write_pictures"]
