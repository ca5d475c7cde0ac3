"""Group ``framework``: a Lightning recipe step vs a minimal plain-PyTorch loop, and the data pipeline's headroom.

For ``fmnist_resnet20`` and ``shakespeare_gpt`` both paths train the recipe's network (built by
``recipes.build`` with the same seed) on the recipe's DataModule with the recipe's optimiser,
schedule, loss, gradient clipping and fast path (precision, channels-last, fused optimiser; ``recipes.build.fast_path_for``):

* **Lightning**: the recipe's task module (``recipes.build.build_module``) in a ``lightning.Trainer``
  with the recipe's trainer settings and its ``TrainingMonitor`` callback, logging to CSV every
  ``log_every_n_steps`` (checkpointing, validation and the progress bar off);
* **plain**: ``for batch in loader: transform; loss = loss_fn(net(x), y); backward; clip; step; sched.step()``.

A step's time is the interval between the starts of consecutive steps (batch fetch included),
averaged over a chunk of steps after ``skip`` warm-up steps; rounds alternate plain/Lightning chunks.
Goal: Lightning / plain <= 1.05. The data pipeline alone (loader + on-device transform, no model)
must deliver >= 5x the samples per second that the plain loop trains on.
"""

from __future__ import annotations

import logging
import tempfile
import time
import warnings
from collections.abc import Callable
from typing import Any

import torch

from .context import Context
from .loop import PlainLoop
from .recipe import RecipeSetup, load
from .report import Goal, Result
from .timing import fmt_time, quartiles, sync

GROUP = "framework"
RECIPES = ("fmnist_resnet20", "shakespeare_gpt")
STEP_GOAL = Goal("<=", 1.05)
DATA_GOAL = Goal(">=", 5.0)


def quiet_lightning() -> None:
    """Lightning's banners and hints (no GPU, few workers, ...) would bury the table."""
    import lightning.pytorch  # noqa: F401  (sets its loggers' levels on import: set ours after)

    for name in ("lightning", "lightning.pytorch", "lightning.fabric", "lightning_fabric"):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", module="lightning")
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")


def _step_timer(skip: int, steps: int, device: torch.device, clock: Callable[[], float]) -> Any:
    from lightning.pytorch.callbacks import Callback

    class StepTimer(Callback):
        """Start time of every train batch (after its fetch and transfer); syncs at the two it measures from/to."""

        def __init__(self) -> None:
            self.starts: list[float] = []

        def on_train_batch_start(self, trainer: Any, pl_module: Any, batch: Any, batch_idx: int) -> None:
            if len(self.starts) in (skip, steps - 1):
                sync(device)
            self.starts.append(clock())

        def per_step(self) -> float:
            return (self.starts[-1] - self.starts[skip]) / (len(self.starts) - 1 - skip)

    return StepTimer()


def lightning_chunk(
    setup: RecipeSetup,
    module: Any,
    steps: int,
    skip: int,
    root: str,
    clock: Callable[[], float] = time.perf_counter,
    callbacks: tuple[Any, ...] = (),
) -> float:
    """Seconds per step of ``steps`` recipe steps through a fresh ``lightning.Trainer`` (the first ``skip`` not counted);
    ``callbacks`` are added to the recipe's ``TrainingMonitor`` (group ``diagnostics``)."""
    import lightning.pytorch as pl
    from lightning.pytorch.loggers import CSVLogger

    from recipes.tracking.callbacks import TrainingMonitor
    from recipes.engine.precision import trainer_precision

    t, decision = setup.cfg.trainer, setup.decision()
    timer = _step_timer(skip, steps, setup.device, clock)
    trainer = pl.Trainer(
        accelerator=t.accelerator, devices=1, **trainer_precision(decision.precision, decision.device),
        max_steps=steps, max_epochs=-1,
        gradient_clip_val=t.gradient_clip_val, gradient_clip_algorithm=t.gradient_clip_algorithm,
        log_every_n_steps=t.log_every_n_steps, logger=CSVLogger(root, name="bench"),
        callbacks=[TrainingMonitor(), *callbacks, timer], enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, limit_val_batches=0, num_sanity_val_steps=0, default_root_dir=root,
    )  # fmt: skip
    trainer.fit(module, datamodule=setup.dm)
    return timer.per_step()


def data_chunk(setup: RecipeSetup, batches: int, clock: Callable[[], float] = time.perf_counter) -> float:
    """Samples per second of the loader + on-device transform alone (a fresh iterator, like an epoch start)."""
    it = iter(setup.dm.train_dataloader())
    setup.transform(next(it))  # the first batch pays the iterator set-up, not counted
    sync(setup.device)
    start = clock()
    n = 0
    for _ in range(batches):
        x, _y = setup.transform(next(it))
        n += x.shape[0]
    sync(setup.device)
    return n / (clock() - start)


def bench_recipe(ctx: Context, name: str, root: str) -> list[Result]:
    from recipes.build import build_module

    setup = load(ctx, name)
    steps, skip = ctx.pick(4, 12, 30), ctx.pick(1, 2, 3)
    rounds = ctx.pick(2, 3, 5)
    if setup.is_lm:
        steps = ctx.pick(4, 30, 60)
    decision = setup.decision()
    module = build_module(setup.cfg, setup.dm, decision)
    torch.manual_seed(0)
    module.configure_model()
    module.net.to(setup.device)
    plain, batches = PlainLoop(setup, setup.build_net(seed=0), decision.path), setup.train_batches()
    plain.chunk(batches, skip + 2, skip, ctx.now)  # warm-up of the plain path (Lightning warms up inside each chunk)
    t_plain, t_light, rates = [], [], []
    for r in range(rounds):
        order = ("plain", "lightning", "data") if r % 2 == 0 else ("data", "lightning", "plain")
        for what in order:
            if what == "plain":
                t_plain.append(plain.chunk(batches, steps, skip, ctx.now))
            elif what == "lightning":
                t_light.append(lightning_chunk(setup, module, steps, skip, root, ctx.now))
            else:
                rates.append(data_chunk(setup, ctx.pick(3, 20, 50), ctx.now))
    ratios = [a / b for a, b in zip(t_light, t_plain)]
    q1, med, q3 = quartiles(ratios)
    bs = setup.batch_size
    p_med, l_med = quartiles(t_plain)[1], quartiles(t_light)[1]
    precision = f"recipe: {decision.precision}"
    shape = f"batch {bs}, {steps - 1 - skip} timed steps x {rounds} rounds"
    step_row = Result(
        GROUP, f"{name}: Lightning step vs plain loop", "time ratio", med, iqr=(q1, q3), goal=STEP_GOAL, dtype=precision,
        reference=f"plain: {fmt_time(p_med)}/step", candidate=f"Lightning: {fmt_time(l_med)}/step", notes=shape,
        data={"reference_s": t_plain, "candidate_s": t_light},
    )  # fmt: skip
    headroom = [rate / (bs / t) for rate, t in zip(rates, t_plain)]
    q1, med, q3 = quartiles(headroom)
    data_row = Result(
        GROUP, f"{name}: data pipeline vs training", "throughput ratio", med, iqr=(q1, q3), goal=DATA_GOAL, dtype=precision,
        reference=f"training: {bs / p_med:,.0f} samples/s", candidate=f"data: {quartiles(rates)[1]:,.0f} samples/s",
        notes=f"loader + on-device transform, num_workers={setup.cfg.data.num_workers}",
        data={"data_samples_per_s": rates, "train_samples_per_s": [bs / t for t in t_plain]},
    )  # fmt: skip
    return [step_row, data_row]


def run(ctx: Context) -> list[Result]:
    quiet_lightning()
    results = []
    with tempfile.TemporaryDirectory(prefix="resblocks-bench-") as root:
        for name in RECIPES:
            results += bench_recipe(ctx, name, root)
    return results


__all__ = ["GROUP", "RECIPES", "bench_recipe", "data_chunk", "lightning_chunk", "run"]
