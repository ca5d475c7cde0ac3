"""Start-up of the default command: seconds from the command to the first training step, and ``--help``.

    python -m benchmarks.startup --data ../shared/data/tinyshakespeare/input.txt --rounds 3

Each round runs, one after another (the order reversed every other round), in fresh processes:

* ``python -c "import torch"`` (the floor every torch program pays);
* ``python -m recipes.train --help``;
* ``python -m recipes.train data=text_files data.path=DATA trainer.max_steps=1`` (logger, fast path, data,
  checkpoint as shipped; its run folder in a temporary directory), timed from the launch to the start of
  the first training batch (a callback prints the time; the rest of the run is not counted).

The fast-path calibration is cached after the first round (``$RESBLOCKS_CACHE``), as it is for a user's second
run; the first round's row shows the uncached cost. Prints wall and CPU seconds per command, and the medians.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MARK = "resblocks-first-step-at "


def _child_first_step(argv: Sequence[str]) -> None:
    """In the child: ``python -m recipes.train ARGV`` (as ``__main__``, as Hydra wants it), with a callback added to
    every Trainer that prints the time at the start of the first training batch."""
    import runpy

    import lightning.pytorch as pl  # imported by recipes.train anyway: importing it first changes no total

    class FirstStep(pl.Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):  # noqa: ANN001
            if trainer.global_step == 0:
                print(f"{MARK}{time.time():.6f}", flush=True)

    init = pl.Trainer.__init__

    def patched(self, *a, callbacks=None, **k):  # noqa: ANN001
        init(self, *a, callbacks=[*(callbacks or []), FirstStep()], **k)

    pl.Trainer.__init__ = patched  # type: ignore[method-assign]
    sys.argv = ["recipes.train", *argv]
    runpy.run_module("recipes.train", run_name="__main__", alter_sys=True)


def cpu_children() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def timed(cmd: Sequence[str], env: dict[str, str], first_step: bool = False) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of ``cmd``; with ``first_step``, wall up to the printed first-step time."""
    c0, t0 = cpu_children(), time.time()
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    wall, cpu = time.time() - t0, cpu_children() - c0
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd[:4])}: exit {done.returncode}: {done.stderr.strip().splitlines()[-2:]}")
    if first_step:
        mark = next(ln for ln in done.stdout.splitlines() if ln.startswith(MARK))
        wall = float(mark[len(MARK):]) - t0
    return wall, cpu


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.startup", description=__doc__.split("\n")[0])
    p.add_argument("--data", type=Path, help="a text file for data=text_files (tiny-shakespeare's input.txt)")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--threads", type=int, default=None, help="OMP_NUM_THREADS for the children")
    p.add_argument("--first-step-child", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.first_step_child is not None:
        _child_first_step(args.first_step_child)
        return 0
    if args.data is None or not args.data.is_file():
        print(f"error: --data: {args.data} is not a file; valid: a text file (tiny-shakespeare's input.txt)", file=sys.stderr)
        return 2
    env = dict(os.environ, **({"OMP_NUM_THREADS": str(args.threads)} if args.threads else {}))
    py = sys.executable
    rows: dict[str, list[tuple[float, float]]] = {"import torch": [], "--help": [], "first step": []}
    with tempfile.TemporaryDirectory(prefix="startup_") as tmp:
        env.setdefault("RESBLOCKS_CACHE", str(Path(tmp) / "cache"))
        cmds = {
            "import torch": ([py, "-c", "import torch"], False),
            "--help": ([py, "-m", "recipes.train", "--help"], False),
            "first step": ([py, "-m", "benchmarks.startup", "--first-step-child", "data=text_files",
                            f"data.path={args.data.resolve()}", "trainer.max_steps=1", f"run_dir={tmp}/run",
                            "overwrite=true", "sample.tokens=0"], True),  # fmt: skip
        }
        print(f"{'round':>5}  " + "  ".join(f"{k + ' wall/cpu s':>24}" for k in rows), flush=True)
        for r in range(args.rounds):
            got = {}
            for name in (list(cmds) if r % 2 == 0 else list(cmds)[::-1]):
                got[name] = timed(*cmds[name][:1], env, first_step=cmds[name][1])
                rows[name].append(got[name])
            print(f"{r:>5}  " + "  ".join(f"{got[k][0]:>15.2f} / {got[k][1]:>5.2f}" for k in rows), flush=True)
    med = {k: (statistics.median(w for w, _ in v), statistics.median(c for _, c in v)) for k, v in rows.items()}
    print("median " + "  ".join(f"{k}: {w:.2f} s wall, {c:.2f} s CPU" for k, (w, c) in med.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
