"""Where the default command's CPU time goes, next to nanoGPT's: the profile behind the ``--as-user`` ratio.

    python -m benchmarks.default_parts --data ../shared/data/tinyshakespeare/input.txt --threads 1

``benchmarks.nanogpt_shakespeare --as-user`` gives one number (the default command's CPU time over nanoGPT's);
this splits it into parts that can be measured one at a time, each as alternated rounds:

* **bare step**: forward, backward and optimiser step of the default GPT (fused AdamW, as the fast path
  picks on a CPU) and of nanoGPT's model with its own AdamW (foreach on a CPU), on the same batch, in this
  process, no framework;
* **step in the loop**: the recipe's CPU seconds per step inside Lightning, ``(run of N+1 steps - run of 1
  step) / N`` with ``logger=none sample.tokens=0`` (one validation in both, so it cancels);
* **fixed cost**: the whole 1-step run (imports, Hydra, data, model, trainer, one step, one validation,
  summary);
* **W&B**: the same N+1-step run with the default logger (W&B, offline without a key) less ``logger=csv``.

Prints one line per part with the median and the rounds. The differences of two process CPU times carry
their noise (about +-0.3 s here); read the per-step figure with N >= 200.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from .nanogpt_shakespeare import run_timed  # CPU seconds of a child process; one line if it fails

BATCH, CONTEXT, VOCAB = 12, 64, 65  # nanoGPT's CPU run; tiny-shakespeare's 65 characters


def recipe_cpu_seconds(argv: Sequence[str], env: dict[str, str]) -> float:
    """CPU seconds (user + system, its children included) of ``python -m recipes.train ARGV``."""
    return run_timed([sys.executable, "-m", "recipes.train", *argv], env)[0]


def per_step(long_run: float, one_step_run: float, extra_steps: int) -> float:
    """Seconds per step from two runs that differ only in their number of steps."""
    if extra_steps < 1:
        raise ValueError(f"extra_steps: {extra_steps}; valid: >= 1")
    return (long_run - one_step_run) / extra_steps


def bare_steps(rounds: int, steps: int = 25) -> dict[str, list[float]]:
    """Milliseconds per training step of the default GPT (fused AdamW) and nanoGPT's model (its AdamW),
    alternated."""
    import torch
    import torch.nn.functional as F

    import resblocks

    from .references import NanoGPT

    torch.manual_seed(0)
    x, y = torch.randint(0, VOCAB, (BATCH, CONTEXT)), torch.randint(0, VOCAB, (BATCH, CONTEXT))
    ours = resblocks.build_model("gpt_nano", vocab_size=VOCAB, block_size=CONTEXT)
    ref = NanoGPT(VOCAB, CONTEXT, 4, 4, 128)
    opts = {"recipe's GPT, fused AdamW": (ours, torch.optim.AdamW(ours.parameters(), lr=1e-3, fused=True)),
            "nanoGPT's model, its AdamW": (ref, torch.optim.AdamW(ref.parameters(), lr=1e-3))}  # fmt: skip

    def step(net: torch.nn.Module, opt: torch.optim.Optimizer) -> Callable[[], None]:
        def run() -> None:
            F.cross_entropy(net(x).flatten(0, 1), y.flatten()).backward()
            opt.step()
            opt.zero_grad(set_to_none=True)

        return run

    fns = {k: step(*v) for k, v in opts.items()}
    for f in fns.values():
        for _ in range(5):
            f()
    out: dict[str, list[float]] = {k: [] for k in fns}
    for r in range(rounds):
        for k in list(fns) if r % 2 == 0 else list(fns)[::-1]:
            start = time.process_time()
            for _ in range(steps):
                fns[k]()
            out[k].append((time.process_time() - start) / steps * 1e3)
    return out


def line(label: str, values: Sequence[float], unit: str) -> str:
    rounds = ", ".join(f"{v:.2f}" for v in values)
    return f"{label:<42} median {statistics.median(values):8.2f} {unit}   rounds: {rounds}"


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.default_parts", description=__doc__.split("\n")[0])
    p.add_argument("--data", type=Path, help="a text file for data=text_files (tiny-shakespeare's input.txt)")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--steps", type=int, default=200, help="N: the longer runs train N + 1 steps")
    p.add_argument("--threads", type=int, default=1, help="torch threads here and OMP_NUM_THREADS for the runs")
    args = p.parse_args(argv)
    if args.data is None or not args.data.is_file():
        print(
            f"error: --data: {args.data} is not a file; valid: a text file (tiny-shakespeare's input.txt)",
            file=sys.stderr,
        )
        return 2
    if args.steps < 1 or args.rounds < 1:
        print(f"error: --steps {args.steps} --rounds {args.rounds}; valid: both >= 1", file=sys.stderr)
        return 2
    import torch

    torch.set_num_threads(args.threads)
    for label, values in bare_steps(args.rounds).items():
        print(line(f"bare step: {label}", values, "ms"), flush=True)
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
    with tempfile.TemporaryDirectory(prefix="default_parts_") as tmp:
        env.setdefault("RESBLOCKS_CACHE", str(Path(tmp) / "cache"))
        base = ["data=text_files", f"data.path={args.data.resolve()}", "sample.tokens=0", "overwrite=true"]
        runs = {
            "one": [*base, "trainer.max_steps=1", "logger=none"],
            "long": [*base, f"trainer.max_steps={args.steps + 1}", "logger=none"],
            "csv": [*base, f"trainer.max_steps={args.steps + 1}", "logger=csv"],
            "wandb": [*base, f"trainer.max_steps={args.steps + 1}"],
        }
        recipe_cpu_seconds([*runs["one"], f"run_dir={tmp}/warm"], env)  # the calibration, cached as for a user
        got: dict[str, list[float]] = {k: [] for k in runs}
        for r in range(args.rounds):
            for k in list(runs) if r % 2 == 0 else list(runs)[::-1]:
                got[k].append(recipe_cpu_seconds([*runs[k], f"run_dir={tmp}/{k}"], env))
    steps = [per_step(a, b, args.steps) * 1e3 for a, b in zip(got["long"], got["one"])]
    print(line("step in the loop (recipe, logger=none)", steps, "ms"))
    print(line("fixed cost: the whole 1-step run", got["one"], "s CPU"))
    wandb = [w - c for w, c in zip(got["wandb"], got["csv"])]
    print(line(f"W&B offline - csv ({args.steps + 1} steps)", wandb, "s CPU"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
