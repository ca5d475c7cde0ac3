"""nanoGPT's CPU Shakespeare run next to the ``shakespeare_gpt`` recipe: validation loss and wall time.

    python -m benchmarks.nanogpt_shakespeare --data ../shared/data/tinyshakespeare/input.txt --seeds 0 1 2 3

For each seed, in the same process and machine state:

* **nanoGPT**: its ``train.py`` loop at its README's CPU setting (batch 12, context 64, 2000 iterations, AdamW
  lr 1e-3, betas (0.9, 0.99), weight decay 0.1 on 2-D weights, 100 warm-up iterations then cosine to 1e-4,
  gradient clipping 1.0, fp32, windows at uniformly random offsets drawn with ``torch.randint``) around its
  model (:class:`benchmarks.references.NanoGPT`, 4 layers, 4 heads, 128 wide, no biases), on nanoGPT's
  character split (first 90 % train, last 10 % val);
* **recipe as nanoGPT**: ``python -m recipes.train data=text_files data.path=DATA seed=S`` plus
  :data:`NANOGPT_OPTIM` (nanoGPT's weight decay, betas and clipping) in a subprocess: the same network and
  optimiser through the framework, on the recipe's default path (bf16 autocast where the CPU runs it
  natively, fused AdamW);
* **recipe**: the same command as the recipe ships (no weight decay, betas (0.9, 0.999), no clipping).

All are scored on the **whole** validation split (every non-overlapping window of 64 characters), not on
nanoGPT's 20 random batches, whose mean is noisy (+-0.015). Times are the training loops' wall time (the
recipe's includes its one validation and checkpoint at the end). Prints one row per seed and the means.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .references import NanoGPT

ROOT = Path(__file__).resolve().parents[1]
BATCH, CONTEXT = 12, 64
WEIGHT_DECAY, BETAS, CLIP = 0.1, (0.9, 0.99), 1.0  # nanoGPT's config/train_shakespeare_char.py and train.py
# The recipe drops these three (conf/recipe/shakespeare_gpt.yaml); these overrides set them back.
NANOGPT_OPTIM = (
    f"optim.weight_decay={WEIGHT_DECAY}",
    f"optim.betas=[{BETAS[0]},{BETAS[1]}]",
    f"trainer.gradient_clip_val={CLIP}",
)


def char_split(path: Path) -> tuple[np.ndarray, np.ndarray, int]:
    """nanoGPT's ``data/shakespeare_char/prepare.py``: sorted character vocabulary, 90/10 split by position."""
    text = path.read_text(encoding="utf-8")
    stoi = {c: i for i, c in enumerate(sorted(set(text)))}
    ids = np.array([stoi[c] for c in text], dtype=np.int64)
    cut = int(len(ids) * 0.9)
    return ids[:cut], ids[cut:], len(stoi)


def nanogpt_lr(it: int, steps: int, lr: float = 1e-3, warmup: int = 100, min_lr: float = 1e-4) -> float:
    """nanoGPT's ``get_lr``: linear warm-up, then cosine from ``lr`` to ``min_lr`` at ``steps``."""
    if it < warmup:
        return lr * (it + 1) / (warmup + 1)
    ratio = (it - warmup) / max(1, steps - warmup)
    return min_lr + 0.5 * (1.0 + math.cos(math.pi * min(ratio, 1.0))) * (lr - min_lr)


@torch.no_grad()
def full_val_loss(model: torch.nn.Module, val: np.ndarray) -> float:
    """Mean cross-entropy over every non-overlapping ``CONTEXT`` window of ``val``."""
    model.eval()
    n = (len(val) - 1) // CONTEXT
    x = torch.from_numpy(val[: n * CONTEXT]).view(n, CONTEXT)
    y = torch.from_numpy(val[1 : n * CONTEXT + 1]).view(n, CONTEXT)
    total = sum(
        F.cross_entropy(model(x[i : i + 256]).flatten(0, 1), y[i : i + 256].flatten(), reduction="sum").item()
        for i in range(0, n, 256)
    )
    return total / (n * CONTEXT)


def train_nanogpt(train: np.ndarray, val: np.ndarray, vocab: int, seed: int, steps: int) -> tuple[float, float]:
    """nanoGPT's loop around its model on :func:`char_split`'s arrays; returns (whole-split val loss, seconds)."""
    torch.manual_seed(seed)
    model = NanoGPT(vocab, CONTEXT, n_layer=4, n_head=4, n_embd=128)
    params = list(model.parameters())
    groups = [
        {"params": [p for p in params if p.dim() >= 2], "weight_decay": WEIGHT_DECAY},
        {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
    ]
    opt = torch.optim.AdamW(groups, lr=1e-3, betas=BETAS)
    start = time.perf_counter()
    for it in range(steps):
        for g in opt.param_groups:
            g["lr"] = nanogpt_lr(it, steps)
        ix = torch.randint(len(train) - CONTEXT, (BATCH,))
        x = torch.stack([torch.from_numpy(train[i : i + CONTEXT]) for i in ix])
        y = torch.stack([torch.from_numpy(train[i + 1 : i + 1 + CONTEXT]) for i in ix])
        loss = F.cross_entropy(model(x).flatten(0, 1), y.flatten())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, CLIP)
        opt.step()
    seconds = time.perf_counter() - start
    return full_val_loss(model, val), seconds


def train_recipe(data: Path, seed: int, steps: int, threads: int | None, extra: Sequence[str]) -> tuple[float, float]:
    """``python -m recipes.train data=text_files ...``; returns (whole-split val loss, the run's seconds)."""
    with tempfile.TemporaryDirectory(prefix="nanogpt_recipe_") as tmp:
        cmd = [
            sys.executable, "-m", "recipes.train", "data=text_files", f"data.path={data.resolve()}",
            "data.val_batches=null", f"seed={seed}", f"trainer.max_steps={steps}", "logger=none",
            f"run_dir={tmp}/run", "sample.tokens=0",
            # Only the final score is used: validate (the whole split) and checkpoint once, at the end.
            f"trainer.val_check_interval={steps}", f"checkpoint.every_n_steps={steps}", *extra,
        ]  # fmt: skip
        env = dict(os.environ, **({"OMP_NUM_THREADS": str(threads)} if threads else {}))
        done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(
                f"recipe: exit {done.returncode}: {(done.stderr or done.stdout).strip().splitlines()[-1:]}"
            )
        summary = json.loads((Path(tmp) / "run" / "summary.json").read_text())
        return float(summary["metrics"]["val/loss"]), float(summary["seconds"])


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.nanogpt_shakespeare", description=__doc__.split("\n")[0])
    p.add_argument("--data", type=Path, required=True, help="a text file, e.g. tiny-shakespeare's input.txt")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    p.add_argument("--steps", type=int, default=2000, help="training iterations (nanoGPT's CPU run: 2000)")
    p.add_argument("--threads", type=int, default=None, help="torch threads for both (default: torch's choice)")
    p.add_argument("--recipe-args", nargs="*", default=[], help="more overrides for the recipe, e.g. shortcut=decayed")
    return p.parse_args(argv)


def row(label: str, cells: Sequence[float | str]) -> str:
    """One table line: three losses (4 decimals), then three times in seconds (1 decimal)."""
    text = [c if isinstance(c, str) else f"{c:.{4 if i < 3 else 1}f}" for i, c in enumerate(cells)]
    return f"{label:>4}  " + "  ".join(f"{t:>13}" for t in text)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if not args.data.is_file():
        print(
            f"error: --data: {args.data} is not a file; valid: a text file (tiny-shakespeare's input.txt)",
            file=sys.stderr,
        )
        return 2
    if args.threads:
        torch.set_num_threads(args.threads)
    cols = ("nanoGPT", "as nanoGPT", "recipe")
    print(row("seed", [f"{c} val" for c in cols] + [f"{c} s" for c in cols]))
    rows, split = [], char_split(args.data)
    for seed in args.seeds:
        ref = train_nanogpt(*split, seed, args.steps)
        same = train_recipe(args.data, seed, args.steps, args.threads, [*NANOGPT_OPTIM, *args.recipe_args])
        ours = train_recipe(args.data, seed, args.steps, args.threads, args.recipe_args)
        rows.append((ref[0], same[0], ours[0], ref[1], same[1], ours[1]))
        print(row(str(seed), rows[-1]), flush=True)
    m = [statistics.fmean(col) for col in zip(*rows)]
    print(row("mean", m))
    print(
        f"recipe as nanoGPT - nanoGPT: {m[1] - m[0]:+.4f} nats, time ratio {m[4] / m[3]:.2f}x; "
        f"recipe - nanoGPT: {m[2] - m[0]:+.4f} nats, time ratio {m[5] / m[3]:.2f}x"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
