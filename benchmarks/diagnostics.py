"""Group ``diagnostics``: what the residual diagnostics cost a training step (``recipes.diagnostics``).

* **default cadence**: the ``shakespeare_gpt`` recipe step through Lightning (as group ``framework``) with
  :class:`~recipes.diagnostics.ResidualDiagnostics` at the recipes' default ``every_n_steps`` (250: logging to
  CSV, pictures off) vs the same Trainer without it, in alternating chunks of ``every_n_steps + 1`` timed steps
  that each hold exactly one probed step. Goal <= 1.02.
* **probed step**: one training step (forward, backward, optimiser step, ``zero_grad``) with a
  :class:`~resblocks.diagnostics.ResidualProbe` attached, collected after the backward and detached, vs the
  same step without it, on a fixed batch, for ``shakespeare_gpt`` and ``fmnist_resnet20`` with their fast
  path; goal <= 1.5. With ``effective_rank=True`` (one SVD per sub-layer on at most 1024 rows): reported.
"""

from __future__ import annotations

import tempfile
from typing import Any

import torch

from .context import Context
from .framework import lightning_chunk, quiet_lightning
from .loop import PlainLoop
from .recipe import load
from .report import Goal, Result
from .timing import fmt_time, interleaved, quartiles

GROUP = "diagnostics"
CADENCE_GOAL = Goal("<=", 1.02)
PROBED_GOAL = Goal("<=", 1.5)
DEFAULT_EVERY = 250  # conf/diagnostics/default.yaml


def step(loop: PlainLoop, batch: tuple[torch.Tensor, torch.Tensor], probe: Any = None) -> torch.Tensor:
    """:meth:`PlainLoop.step` with ``probe`` attached for the forward and backward, collected before the update."""
    if probe is None:
        return loop.step(batch)

    def collect() -> None:
        probe.collect()  # the one host sync, after backward and before the gradients are zeroed
        probe.detach()

    probe.attach()
    return loop.step(batch, after_backward=collect)


def bench_probed(ctx: Context, name: str) -> list[Result]:
    from resblocks.diagnostics import ResidualProbe

    setup = load(ctx, name)
    loop = PlainLoop(setup, setup.build_net(seed=0))
    batch = setup.fixed_batch()
    probes = {
        "probed": ResidualProbe(loop.net),
        "probed+rank": ResidualProbe(loop.net, effective_rank=True, rank_rows=1024),
    }
    fns = {"plain": lambda: step(loop, batch)} | {k: (lambda p=p: step(loop, batch, p)) for k, p in probes.items()}
    timings = interleaved(fns, **ctx.timing())
    dtype = f"recipe: {setup.decision().precision}"
    plain = timings.median("plain")
    subs = len(probes["probed"].sublayers)
    rows = []
    variants = (("probed", "probed step", PROBED_GOAL), ("probed+rank", "probed step with effective rank", None))
    notes = f"{subs} residual sub-layers, batch {setup.batch_size}, fixed batch; probe attached, collected, detached"
    for key, label, goal in variants:
        med, iqr = timings.ratio(key, "plain")
        rows.append(Result(
            GROUP, f"{name}: {label} vs plain step", "time ratio", med, iqr=iqr, goal=goal, dtype=dtype,
            reference=f"plain: {fmt_time(plain)}/step", candidate=f"{label}: {fmt_time(timings.median(key))}/step",
            notes=notes,
            data={"reference_s": timings.seconds["plain"], "candidate_s": timings.seconds[key]},
        ))  # fmt: skip
    return rows


def bench_cadence(ctx: Context, name: str, root: str) -> Result:
    from recipes.build import build_module
    from recipes.diagnostics import ResidualDiagnostics

    setup = load(ctx, name)
    every = ctx.pick(2, DEFAULT_EVERY, DEFAULT_EVERY)
    skip = ctx.pick(1, 2, 3)
    steps = skip + every + 2  # steps 0 (warm-up, probed) ... every (timed, probed): one probe in the window
    rounds = ctx.pick(2, 3, 5)
    module = build_module(setup.cfg, setup.dm, setup.decision())
    torch.manual_seed(0)
    module.configure_model()
    module.net.to(setup.device)
    lightning_chunk(setup, module, skip + 2, skip, root, ctx.now)  # warm-up
    t_off, t_on = [], []
    for r in range(rounds):
        for on in (False, True) if r % 2 == 0 else (True, False):
            extra = (ResidualDiagnostics(every, pictures=False),) if on else ()
            (t_on if on else t_off).append(lightning_chunk(setup, module, steps, skip, root, ctx.now, extra))
    ratios = [a / b for a, b in zip(t_on, t_off)]
    q1, med, q3 = quartiles(ratios)
    return Result(
        GROUP, f"{name}: Lightning step with diagnostics every {every} steps vs off", "time ratio", med, iqr=(q1, q3),
        goal=CADENCE_GOAL, dtype=f"recipe: {setup.decision().precision}",
        reference=f"off: {fmt_time(quartiles(t_off)[1])}/step", candidate=f"on: {fmt_time(quartiles(t_on)[1])}/step",
        notes=f"{steps - 1 - skip} timed steps (one probed) x {rounds} rounds, CSV logging",
        data={"reference_s": t_off, "candidate_s": t_on},
    )  # fmt: skip


def run(ctx: Context) -> list[Result]:
    quiet_lightning()
    results = []
    with tempfile.TemporaryDirectory(prefix="resblocks-bench-") as root:
        results.append(bench_cadence(ctx, "shakespeare_gpt", root))
    for name in ("shakespeare_gpt", "fmnist_resnet20"):
        results += bench_probed(ctx, name)
    return results


__all__ = ["GROUP", "bench_cadence", "bench_probed", "run", "step"]
