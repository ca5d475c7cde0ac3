"""Group ``fast_path``: the fast training path vs plain float32 eager, in speed and in final quality.

For ``fmnist_resnet20`` and ``shakespeare_gpt`` (the recipes' network, optimiser, schedule, loss
and data, run by :class:`benchmarks.loop.PlainLoop`):

* **speed**: step time of fp32 eager / fast path on a fixed real batch (interleaved rounds); the
  fast path is what ``recipes.train`` uses: on a CPU its calibration decides precision and channels-last
  (:func:`measured_path`; the CPU-flags rule, :func:`benchmarks.loop.default_fast_path`, is a row of its
  own where it differs), fused optimiser, ``torch.compile`` on GPU only. ``full`` mode adds each switch
  alone, so a switch that does not help shows up;
* **quality**: the same fixed-seed, same-batches short run with each path, then the mean train loss
  over its last eighth and the validation loss (and accuracy) on fixed val batches; ``full`` also
  trains fp32 from a second seed, which gives the seed-to-seed spread the difference should be read against.
"""

from __future__ import annotations

import dataclasses
import itertools

import torch

from .context import Context, dtype_label
from .loop import FastPath, PlainLoop, default_fast_path
from .recipe import RecipeSetup, load
from .report import Result, ratio_result
from .timing import interleaved

GROUP = "fast_path"
RECIPES = ("shakespeare_gpt", "fmnist_resnet20")
BASE = FastPath()


def measured_path(ctx: Context, setup: RecipeSetup) -> FastPath | None:
    """On a CPU, the path ``recipes.train`` takes: its calibration (``recipes/engine/calibrate.py``, cached per
    machine, torch threads and model shape) decides precision and channels-last; ``None`` elsewhere or where it
    is off (``RESBLOCKS_CALIBRATE=0``)."""
    from recipes.build import fast_path_for
    from recipes.engine.fast_path import kind_of

    if kind_of(ctx.device) != "cpu":
        return None
    d = fast_path_for(setup.cfg, setup.dm, measure=True)
    if "measured" not in d.why["precision"] and d.why.get("channels_last") != "measured":
        return None
    return FastPath(bf16=d.path.bf16, channels_last=d.path.channels_last, fused=d.path.fused, compile=d.path.compile)


def paths(ctx: Context, setup: RecipeSetup) -> dict[str, FastPath]:
    """``{label: path}``: fp32 eager, the default fast path (on a CPU: measured, as ``recipes.train`` decides it;
    ``by CPU flags``: the flags rule, where it differs) and, in ``full`` mode, each switch of the flags rule alone."""
    fast = default_fast_path(ctx.device, conv_net=not setup.is_lm, compile=ctx.compile)
    measured = measured_path(ctx, setup)
    out = {"fp32 eager": BASE, "fast path": measured or fast}
    if measured is not None and measured != fast:
        out["by CPU flags"] = fast
    if ctx.mode == "full":
        for name in ("bf16", "channels_last", "fused", "compile"):
            if getattr(fast, name):
                out[f"{name} only"] = dataclasses.replace(BASE, **{name: True})
    return out


def speed(ctx: Context, setup: RecipeSetup) -> list[Result]:
    batch = setup.fixed_batch()
    variants = paths(ctx, setup)
    loops = {label: PlainLoop(setup, setup.build_net(seed=0), path) for label, path in variants.items()}
    timings = interleaved({label: (lambda lp=lp: lp.step(batch)) for label, lp in loops.items()}, **ctx.timing())
    results = []
    for label, path in variants.items():
        if label == "fp32 eager":
            continue
        r = ratio_result(timings, label, "fp32 eager", group=GROUP, name=f"{setup.name}: {label}",
                         cand_label=path.label(), dtype=dtype_label("bf16" if path.bf16 else "float32"),
                         notes=f"batch {setup.batch_size}, fixed real batch")  # fmt: skip
        # Reported as a speed-up (reference time / candidate time): > 1 is faster.
        r.metric, r.value = "speed-up", 1.0 / r.value
        r.iqr = None if r.iqr is None else (1.0 / r.iqr[1], 1.0 / r.iqr[0])
        results.append(r)
    return results


def train_and_evaluate(setup: RecipeSetup, path: FastPath, steps: int, val_batches: int, seed: int) -> dict[str, float]:
    """``steps`` steps on the first ``steps`` train batches (the same for every path), then the val metrics."""
    loop = PlainLoop(setup, setup.build_net(seed=seed), path)
    torch.manual_seed(seed)  # dropout masks
    losses = loop.train(itertools.islice(setup.train_batches(), steps))
    tail = torch.stack(losses[-max(1, steps // 8) :]).float()
    # The train loss over the last eighth of the run: the same batches for every path, and steadier
    # than a val metric of an early, high-LR BatchNorm net (running statistics lag the weights).
    return {**loop.evaluate(setup.val_batches(val_batches)), "train_loss": float(tail.mean())}


def quality(ctx: Context, setup: RecipeSetup) -> list[Result]:
    steps = ctx.pick(3, 60, 400) if setup.is_lm else ctx.pick(3, 20, 400)
    val = ctx.pick(2, 10, 40) if setup.is_lm else ctx.pick(2, 8, 40)
    fast = paths(ctx, setup)["fast path"]
    base_m = train_and_evaluate(setup, BASE, steps, val, seed=0)
    fast_m = train_and_evaluate(setup, fast, steps, val, seed=0)
    budget = f"{steps} steps of batch {setup.batch_size} from seed 0, {val} val batches"
    seed_m = train_and_evaluate(setup, BASE, steps, val, seed=1) if ctx.mode == "full" else None
    results = []
    for key, unit, scale in (("train_loss", "", 1.0), ("loss", "", 1.0), ("acc", "pp", 100.0)):
        if key not in base_m:
            continue
        spread = "" if seed_m is None else f"; fp32 seed 1 - seed 0: {scale * (seed_m[key] - base_m[key]):+.4g}{unit}"
        fmt = (lambda v: f"{100 * v:.2f}%") if key == "acc" else (lambda v: f"{v:.4f}")
        what = "train loss (last eighth)" if key == "train_loss" else f"val {key}"
        results.append(
            Result(
                GROUP, f"{setup.name}: final {what}", f"fast - fp32 {what}", scale * (fast_m[key] - base_m[key]),
                unit=unit, dtype=f"float32 vs {dtype_label('bf16' if fast.bf16 else 'float32')}",
                reference=f"fp32 eager: {fmt(base_m[key])}", candidate=f"{fast.label()}: {fmt(fast_m[key])}",
                notes=budget + spread, data={"fp32": base_m, "fast": fast_m, "fp32_seed1": seed_m},
            )  # fmt: skip
        )
    return results


def run(ctx: Context) -> list[Result]:
    results = []
    for name in RECIPES:
        setup = load(ctx, name)
        results += speed(ctx, setup)
        results += quality(ctx, setup)
    return results


__all__ = ["GROUP", "RECIPES", "measured_path", "paths", "quality", "run", "speed", "train_and_evaluate"]
