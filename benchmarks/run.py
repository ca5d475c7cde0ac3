"""Run the benchmarks: ``python -m benchmarks.run [--quick | --smoke] [--only GROUP,...] [--out DIR]``.

Writes ``results.md`` and ``results.json`` to ``--out`` (default ``benchmarks/results/``, git-ignored)
and prints the table. Modes: default ``full`` (the table in ``docs/benchmarks.md``, ~30 min on a
2-core CPU), ``--quick`` (a few minutes), ``--smoke`` (tiny sizes, under a minute; what the test runs).
Exit status 1 if a group failed (its row says why; the other groups still run).
"""

from __future__ import annotations

import argparse
import importlib
import shlex
import sys
import time
import traceback
from collections.abc import Sequence
from pathlib import Path

import torch

from .context import DTYPES, Context
from .machine import describe, load_average
from .report import Result, goals_summary, markdown_table, write_reports

GROUPS = ("blocks", "shortcuts", "framework", "fast_path", "efficiency", "diagnostics", "studies")
DEFAULT_OUT = Path(__file__).resolve().parent / "results"
# mode -> (rounds, warm-up calls, seconds per timed sample)
TIMING = {"smoke": (2, 1, 0.0), "quick": (5, 2, 0.05), "full": (9, 3, 0.2)}
METHOD = (
    "Each benchmark times its candidate and reference in the same process: warm-up calls first, then "
    "rounds in which every variant is timed once, in alternating order (A B, B A, ...); a sample repeats "
    "the call until it lasts the minimum sample time. Value = median over rounds of the per-round ratio; "
    "IQR = its inter-quartile range."
)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.split("\n")[0])
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_const", const="quick", dest="mode", help="smaller sizes, fewer rounds")
    mode.add_argument("--smoke", action="store_const", const="smoke", dest="mode", help="tiny sizes (the test)")
    p.add_argument("--only", default=",".join(GROUPS), help=f"comma-separated groups (default all: {','.join(GROUPS)})")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder (default benchmarks/results/)")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--dtype", choices=(*DTYPES, "both"), default="both", help="float32, bf16 (autocast) or both")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's choice)")
    p.add_argument("--rounds", type=int, default=None, help="timing rounds (default per mode)")
    p.add_argument(
        "--clock", choices=("wall", "cpu"), default="wall",
        help="wall: elapsed time; cpu: process CPU time, steadier on a shared CPU (use with --threads 1)",
    )  # fmt: skip
    p.add_argument(
        "--compile", choices=("auto", "on", "off"), default="auto",
        help="torch.compile in the fast path (group fast_path) and compiled rows in group shortcuts; auto: on GPU only",
    )  # fmt: skip
    p.add_argument(
        "--data-path", action="append", default=[], metavar="NAME=PATH",
        help="data.path for a dataset (fmnist, shakespeare), e.g. local copies; repeatable",
    )  # fmt: skip
    args = p.parse_args(argv)
    args.mode = args.mode or "full"
    args.groups = [g.strip() for g in args.only.split(",") if g.strip()]
    for g in args.groups:
        if g not in GROUPS:
            p.error(f"--only: unknown group {g!r}; valid: {', '.join(GROUPS)}")
    if args.device == "cuda" and not torch.cuda.is_available():
        p.error("--device: cuda requested but torch sees no GPU; valid: cpu")
    if args.clock == "cpu" and args.device == "cuda":
        p.error("--clock: cpu time does not see GPU work; valid with --device cuda: wall")
    for item in args.data_path:
        if "=" not in item:
            p.error(f"--data-path: {item!r}; valid: NAME=PATH")
    return args


def make_context(args: argparse.Namespace) -> Context:
    rounds, warmup, min_time = TIMING[args.mode]
    return Context(
        mode=args.mode, device=torch.device(args.device), dtypes=DTYPES if args.dtype == "both" else (args.dtype,),
        rounds=args.rounds or rounds, warmup=warmup, min_time=min_time,
        data_paths=dict(item.split("=", 1) for item in args.data_path), clock=args.clock,
        compile={"auto": None, "on": True, "off": False}[args.compile],
    )  # fmt: skip


def run_group(name: str, ctx: Context) -> tuple[list[Result], str | None]:
    """The group's rows, or one row saying it failed (and the traceback)."""
    try:
        return importlib.import_module(f"{__package__}.{name}").run(ctx), None
    except Exception as e:  # noqa: BLE001 - one failing group must not hide the others' results
        tb = traceback.format_exc()
        row = Result(name, "group failed", "error", None, unit="", notes=f"{type(e).__name__}: {e}".splitlines()[0])
        return [row], tb


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.clock == "cpu" and torch.get_num_threads() > 1:
        print("[benchmarks] warning: --clock cpu with several threads counts their spinning; use --threads 1", file=sys.stderr)
    ctx = make_context(args)
    command = "python -m benchmarks.run " + " ".join(shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv))
    meta = {
        "command": command.strip(), "mode": ctx.mode, "groups": args.groups, "dtypes": list(ctx.dtypes),
        "timing": {
            "rounds": ctx.rounds, "warmup": ctx.warmup, "min_sample_s": ctx.min_time, "clock": ctx.clock, "method": METHOD,
        },
        "machine": describe(ctx.device), "load": {"before": load_average()},
    }  # fmt: skip
    start = time.perf_counter()
    results: list[Result] = []
    failures: dict[str, str] = {}
    for name in args.groups:
        t0 = time.perf_counter()
        print(f"[benchmarks] {name} ...", file=sys.stderr, flush=True)
        rows, tb = run_group(name, ctx)
        results += rows
        if tb:
            failures[name] = tb
            print(tb, file=sys.stderr, flush=True)
        print(f"[benchmarks] {name}: {len(rows)} rows in {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
        write_reports(results, {**meta, "wall_s": time.perf_counter() - start, "partial": True}, args.out)  # a long run's rows so far
    meta["wall_s"] = time.perf_counter() - start
    meta["load"]["after"] = load_average()
    meta["failures"] = failures
    md, js = write_reports(results, meta, args.out)
    print(markdown_table(results))
    print(goals_summary(results))
    print(f"\nwrote {md} and {js}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
