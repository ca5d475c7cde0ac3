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

``--as-user`` instead times the two commands as their users run them, each in its own process, alternated
(seed by seed, the order reversed every other seed), and reports **CPU time** (user + system of the whole
process: imports, data, training, validation, checkpoints; the measure a shared machine leaves steady):

* **nanoGPT as its README runs it** (``python train.py config/train_shakespeare_char.py --device=cpu
  --compile=False --eval_iters=20 --log_interval=1 --block_size=64 --batch_size=12 --n_layer=4 --n_head=4
  --n_embd=128 --max_iters=2000 --lr_decay_iters=2000 --dropout=0.0``): the loop above plus its
  ``estimate_loss`` every 250 iterations (20 batches of each split), a checkpoint whenever the val loss
  improves, and a printed loss (``loss.item()``) every iteration;
* **the default command**: ``python -m recipes.train data=text_files data.path=DATA seed=S``, nothing else
  (its own run folder in a temporary directory; W&B offline, validation, checkpoints, diagnostics, test and
  sample as shipped).

Both are then scored on the whole split, outside the timed processes (the recipe's last checkpoint through
``recipes.evaluate`` with ``data.val_batches=null``, in fp32).

All are scored on the **whole** validation split (every non-overlapping window of 64 characters), not on
nanoGPT's 20 random batches, whose mean is noisy (+-0.015). Times are the training loops' wall time (the
recipe's includes its one validation and checkpoint at the end). Prints one row per seed and the means.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
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


def nanogpt_and_optimizer(vocab: int, seed: int) -> tuple[torch.nn.Module, torch.optim.Optimizer]:
    """nanoGPT's CPU model (4 layers, 4 heads, 128 wide) seeded, and its AdamW: decay on the matrices only."""
    torch.manual_seed(seed)
    model = NanoGPT(vocab, CONTEXT, n_layer=4, n_head=4, n_embd=128)
    params = list(model.parameters())
    groups = [
        {"params": [p for p in params if p.dim() >= 2], "weight_decay": WEIGHT_DECAY},
        {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
    ]
    return model, torch.optim.AdamW(groups, lr=1e-3, betas=BETAS)


def train_nanogpt(train: np.ndarray, val: np.ndarray, vocab: int, seed: int, steps: int) -> tuple[float, float]:
    """nanoGPT's loop around its model on :func:`char_split`'s arrays; returns (whole-split val loss, seconds)."""
    model, opt = nanogpt_and_optimizer(vocab, seed)
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
        torch.nn.utils.clip_grad_norm_(model.parameters(), CLIP)
        opt.step()
    seconds = time.perf_counter() - start
    return full_val_loss(model, val), seconds


def estimate_loss(model: torch.nn.Module, splits: dict[str, np.ndarray], iters: int) -> dict[str, float]:
    """nanoGPT's ``estimate_loss``: the mean loss of ``iters`` random batches of each split, in eval mode."""
    out = {}
    model.eval()
    with torch.no_grad():
        for name, data in splits.items():
            losses = torch.zeros(iters)
            for k in range(iters):
                ix = torch.randint(len(data) - CONTEXT, (BATCH,))
                x = torch.stack([torch.from_numpy(data[i : i + CONTEXT]) for i in ix])
                y = torch.stack([torch.from_numpy(data[i + 1 : i + 1 + CONTEXT]) for i in ix])
                losses[k] = F.cross_entropy(model(x).flatten(0, 1), y.flatten()).item()
            out[name] = losses.mean().item()
    model.train()
    return out


def train_nanogpt_as_user(
    train: np.ndarray, val: np.ndarray, vocab: int, seed: int, steps: int, out_dir: Path,
    eval_interval: int = 250, eval_iters: int = 20,
) -> torch.nn.Module:
    """nanoGPT's ``train.py`` at its README's CPU command: :func:`train_nanogpt`'s loop plus its evaluation
    every ``eval_interval`` iterations (iteration 0 included), a checkpoint (model, optimiser, iteration)
    whenever the val loss improves, and the loss printed every iteration (``log_interval=1``)."""
    model, opt = nanogpt_and_optimizer(vocab, seed)
    best, t0 = 1e9, time.time()
    for it in range(steps + 1):  # nanoGPT evaluates at max_iters too, then stops
        lr = nanogpt_lr(it, steps)
        for g in opt.param_groups:
            g["lr"] = lr
        if it % eval_interval == 0:
            losses = estimate_loss(model, {"train": train, "val": val}, eval_iters)
            print(f"step {it}: train loss {losses['train']:.4f}, val loss {losses['val']:.4f}", flush=True)
            if losses["val"] < best:
                best = losses["val"]
                if it > 0:
                    torch.save(
                        {"model": model.state_dict(), "optimizer": opt.state_dict(), "iter_num": it, "best_val_loss": best},
                        out_dir / "ckpt.pt",
                    )
        if it == steps:
            break
        ix = torch.randint(len(train) - CONTEXT, (BATCH,))
        x = torch.stack([torch.from_numpy(train[i : i + CONTEXT]) for i in ix])
        y = torch.stack([torch.from_numpy(train[i + 1 : i + 1 + CONTEXT]) for i in ix])
        loss = F.cross_entropy(model(x).flatten(0, 1), y.flatten())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), CLIP)
        opt.step()
        t1 = time.time()
        print(f"iter {it}: loss {loss.item():.4f}, time {(t1 - t0) * 1000:.2f}ms", flush=True)
        t0 = t1
    return model


def cpu_seconds(who: int = resource.RUSAGE_SELF) -> float:
    """User + system CPU seconds of this process (``RUSAGE_SELF``) or of its finished children."""
    r = resource.getrusage(who)
    return r.ru_utime + r.ru_stime


def reference_process(data: Path, seed: int, steps: int, out: Path) -> None:
    """The body of the nanoGPT process (``--reference-run``): train as a user, then score (not timed)."""
    train, val, vocab = char_split(data)
    with tempfile.TemporaryDirectory(prefix="nanogpt_ref_") as tmp:
        model = train_nanogpt_as_user(train, val, vocab, seed, steps, Path(tmp))
        cpu = cpu_seconds()  # the whole process up to here: imports, data, training, evaluation, checkpoints
    out.write_text(json.dumps({"cpu_s": cpu, "val": full_val_loss(model, val)}))


def run_timed(cmd: Sequence[str], env: dict[str, str]) -> tuple[float, float, subprocess.CompletedProcess]:
    """Runs ``cmd``; (its CPU seconds, its wall seconds, the result)."""
    before, start = cpu_seconds(resource.RUSAGE_CHILDREN), time.perf_counter()
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{cmd[2]}: exit {done.returncode}: {(done.stderr or done.stdout).strip().splitlines()[-3:]}")
    return cpu_seconds(resource.RUSAGE_CHILDREN) - before, wall, done


def as_user(data: Path, seed: int, steps: int, env: dict[str, str], recipe_args: Sequence[str]) -> dict[str, float]:
    """One pair: nanoGPT's process and the default command's, in the order ``seed`` says; CPU s, wall s, val."""
    res: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="nanogpt_user_") as tmp:
        ref_json = Path(tmp) / "ref.json"
        ref_cmd = [sys.executable, "-m", "benchmarks.nanogpt_shakespeare", "--reference-run", "--data", str(data.resolve()),
                   "--seeds", str(seed), "--steps", str(steps), "--out", str(ref_json)]  # fmt: skip
        run_dir = Path(tmp) / "run"
        extra = [] if steps == 2000 else [f"trainer.max_steps={steps}"]
        ours_cmd = [sys.executable, "-m", "recipes.train", "data=text_files", f"data.path={data.resolve()}",
                    f"seed={seed}", f"run_dir={run_dir}", *extra, *recipe_args]  # fmt: skip
        for which in (("ref", "ours") if seed % 2 == 0 else ("ours", "ref")):
            if which == "ref":
                _, res["ref_wall"], _ = run_timed(ref_cmd, env)
                got = json.loads(ref_json.read_text())
                res["ref_cpu"], res["ref_val"] = got["cpu_s"], got["val"]
            else:
                res["ours_cpu"], res["ours_wall"], done = run_timed(ours_cmd, env)
                line = next((ln for ln in done.stdout.splitlines() if ln.startswith("fast path:")), "")
                print(f"  recipe {line}", flush=True)
        from recipes.evaluate import evaluate  # scored here, outside the timed processes

        scored = evaluate(run_dir / "checkpoints" / "last.ckpt", ["data.val_batches=null", "trainer.precision=32-true", "trainer.enable_progress_bar=false"])
        res["ours_val"] = float(scored["test/loss"])
    return res


def main_as_user(args: argparse.Namespace) -> int:
    env = dict(os.environ, **({"OMP_NUM_THREADS": str(args.threads)} if args.threads else {}))
    print(f"{'seed':>4}  {'nanoGPT val':>11}  {'recipe val':>10}  {'nanoGPT cpu s':>13}  {'recipe cpu s':>12}  "
          f"{'cpu ratio':>9}  {'nanoGPT wall s':>14}  {'recipe wall s':>13}", flush=True)  # fmt: skip
    rows = []
    for seed in args.seeds:
        r = as_user(args.data, seed, args.steps, env, args.recipe_args)
        rows.append(r)
        print(f"{seed:>4}  {r['ref_val']:>11.4f}  {r['ours_val']:>10.4f}  {r['ref_cpu']:>13.1f}  {r['ours_cpu']:>12.1f}  "
              f"{r['ours_cpu'] / r['ref_cpu']:>8.3f}x  {r['ref_wall']:>14.1f}  {r['ours_wall']:>13.1f}", flush=True)  # fmt: skip
    ratios = [r["ours_cpu"] / r["ref_cpu"] for r in rows]
    dval = statistics.fmean(r["ours_val"] - r["ref_val"] for r in rows)
    print(f"default command / nanoGPT CPU time: median {statistics.median(ratios):.3f}x over {len(rows)} seeds "
          f"(each {', '.join(f'{x:.3f}' for x in ratios)}); recipe - nanoGPT whole-split val loss {dval:+.4f}")  # fmt: skip
    return 0


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
    p.add_argument("--as-user", action="store_true", help="time both commands as users run them (CPU time, alternated)")
    p.add_argument("--reference-run", action="store_true", help=argparse.SUPPRESS)  # the nanoGPT process of --as-user
    p.add_argument("--out", type=Path, help=argparse.SUPPRESS)
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
    if args.reference_run:
        reference_process(args.data, args.seeds[0], args.steps, args.out)
        return 0
    if args.as_user:
        return main_as_user(args)
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
