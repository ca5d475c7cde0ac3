"""Curves of runs that are not a study (a recipe's seeds, a few hand-made variants) from their CSV logs, as one PNG.

    python -m recipes.curves runs/vit_s0 runs/vit_s1 --keys val/acc train/acc --out docs/pictures/fmnist_vit.png
    python -m recipes.curves a=runs/x_s0 a=runs/x_s1 b=runs/y_s0 --keys val/loss --x epoch

Each ``LABEL=RUN_DIR`` (or a bare ``RUN_DIR``: one group named after the first folder) joins a group; every
(group, key) pair is one line, the mean over the group's runs with a min-max band, the study report's picture
(:func:`recipes.studies.report.draw_bands`). ``--x epoch`` puts epochs on the x axis (steps / ``--steps-per-epoch``).
The runs need CSV logs (``logger=csv``, or the ``csv/`` folder a study run writes); a resumed run's versions are
joined (:func:`recipes.studies.results.read_curves`).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from .studies.report import curve_band, draw_bands
from .studies.results import read_curves


def groups(items: Sequence[str]) -> dict[str, list[Path]]:
    """``LABEL=DIR`` / ``DIR`` arguments -> ``{label: [dirs]}`` in order; bare dirs share the first one's name."""
    out: dict[str, list[Path]] = {}
    bare = None
    for item in items:
        label, sep, folder = item.partition("=")
        if not sep:
            label, folder = bare or Path(item).name, item
            bare = label
        out.setdefault(label, []).append(Path(folder))
    return out


def fail(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(2)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m recipes.curves", description=__doc__.split("\n")[0])
    p.add_argument("runs", nargs="+", metavar="[LABEL=]RUN_DIR", help="run folders with csv/ logs")
    p.add_argument("--keys", nargs="+", default=["val/loss"], help="logged metrics to draw (default val/loss)")
    p.add_argument("--out", type=Path, required=True, help="the PNG to write")
    p.add_argument("--x", choices=("step", "epoch"), default="step", help="x axis (default step)")
    p.add_argument("--steps-per-epoch", type=float, default=None, help="optimizer steps per epoch, for --x epoch")
    p.add_argument("--title", default=None, help="picture title (default: the keys)")
    args = p.parse_args(argv)
    if args.x == "epoch" and not (args.steps_per_epoch and args.steps_per_epoch > 0):
        fail(f"--steps-per-epoch: {args.steps_per_epoch}; valid: a number > 0 with --x epoch")
    bands = []
    for label, folders in groups(args.runs).items():
        curves = []
        for folder in folders:
            c = read_curves(folder)
            if not c:
                fail(f"runs: {str(folder)!r} has no CSV logs (csv/version_*/metrics.csv); valid: run folders of logger=csv runs")
            curves.append(c)
        for key in args.keys:
            band = curve_band(curves, key)
            if band is None:
                have = sorted({k for c in curves for k in c if len(c[k]) >= 2 and not k.startswith("residual/")})
                fail(f"--keys: {key!r} has fewer than 2 points in {label!r}; valid: {', '.join(have)}")
            x, mean, lo, hi = band
            if args.x == "epoch":
                x = x / args.steps_per_epoch
            bands.append((f"{label}: {key}" if len(args.keys) > 1 else label, x, mean, lo, hi))
    runs = sum(len(f) for f in groups(args.runs).values())
    title = args.title or f"{', '.join(args.keys)} (mean over {runs} runs; band: min-max)"
    draw_bands(bands, args.out, xlabel=args.x, ylabel=", ".join(args.keys), title=title)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
