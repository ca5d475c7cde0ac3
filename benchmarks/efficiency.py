"""Group ``efficiency``: model FLOPs per second of GPT training as a fraction of the measured matmul ceiling.

The ceiling is a square ``n x n`` matmul (``2 n^3`` FLOPs) in the same dtype, timed in the same
rounds as the model so both see the same machine load. Model FLOPs per token follow nanoGPT's
``estimate_mfu`` (PaLM appendix B): ``6 N + 12 L H Q T`` with N the non-embedding parameters, L
layers, H heads, Q head size, T context; a training step (forward, backward, optimiser) on ``B x T``
tokens counts ``B T (6 N + 12 L H Q T)``. Networks: the ``shakespeare_gpt`` recipe (gpt_nano) and
the GPT of the ``shortcuts`` group (6 layers, width 384, context 256). On CUDA the bf16 path also
runs under ``torch.compile``.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable

import torch
from torch import nn

from . import shortcuts
from .context import Context, dtype_label
from .loop import FastPath, PlainLoop
from .recipe import load
from .report import Result
from .timing import interleaved, quartiles
from .training import train_step

GROUP = "efficiency"


def gpt_flops_per_token(net: nn.Module, context: int) -> float:
    """``6 N + 12 L H Q T`` (nanoGPT ``estimate_mfu``); N excludes the position embeddings, as nanoGPT's."""
    blocks = net.stack.blocks
    attn = blocks[0].attn.branch
    n = net.num_params(non_embedding=True)
    return 6 * n + 12 * len(blocks) * attn.heads * (attn.dim // attn.heads) * context


def matmul(n: int, dtype: torch.dtype, device: torch.device) -> Callable[[], torch.Tensor]:
    a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
    return lambda: a @ b


def mfu_row(
    ctx: Context, name: str, step: Callable[[], object], flops_per_step: float, dtype: str, label: str, notes: str
) -> Result:
    n = ctx.pick(256, 1024, 2048)
    mm_dtype = torch.bfloat16 if dtype == "bf16" else torch.float32
    t = interleaved({"matmul": matmul(n, mm_dtype, ctx.device), "model": step}, **ctx.timing())
    fracs = [(flops_per_step / tm) / (2 * n**3 / tc) for tm, tc in zip(t.seconds["model"], t.seconds["matmul"])]
    q1, med, q3 = quartiles(fracs)
    ceiling = 2 * n**3 / statistics.median(t.seconds["matmul"]) / 1e9
    achieved = flops_per_step / statistics.median(t.seconds["model"]) / 1e9
    return Result(
        GROUP, name, "MFU (fraction of matmul ceiling)", med, unit="", dtype=dtype_label(dtype), iqr=(q1, q3),
        reference=f"{n}x{n} matmul: {ceiling:,.0f} GFLOP/s", candidate=f"{label}: {achieved:,.1f} GFLOP/s",
        notes=notes, data={"model_s": t.seconds["model"], "matmul_s": t.seconds["matmul"], "flops_per_step": flops_per_step},
    )  # fmt: skip


def run(ctx: Context) -> list[Result]:
    results = []
    setup = load(ctx, "shakespeare_gpt")
    batch = setup.fixed_batch()
    b, t = batch[0].shape
    for dtype in ctx.dtypes:
        loop = PlainLoop(setup, setup.build_net(seed=0), FastPath(bf16=dtype == "bf16"))
        flops = gpt_flops_per_token(loop.net, t) * b * t
        clip = f"clip {loop.clip}" if loop.clip else "no clip"
        notes = f"recipe step (AdamW, {clip}, schedule), B={b} T={t}, {loop.net.num_params() / 1e6:.2f}M params"
        results.append(mfu_row(ctx, "shakespeare_gpt (gpt_nano)", lambda lp=loop: lp.step(batch), flops, dtype, "step", notes))
    if ctx.device.type == "cuda" and "bf16" in ctx.dtypes:
        loop = PlainLoop(setup, setup.build_net(seed=0), FastPath(bf16=True, fused=True, compile=True))
        flops = gpt_flops_per_token(loop.net, t) * b * t
        results.append(mfu_row(ctx, "shakespeare_gpt (gpt_nano) + torch.compile", lambda: loop.step(batch), flops,
                               "bf16", "compiled step", f"B={b} T={t}, fused AdamW"))  # fmt: skip
    net = shortcuts.gpt_net(ctx)
    big_batch = tuple(x.to(ctx.device) for x in net.batch())
    b, t = big_batch[0].shape
    for dtype in ctx.dtypes:
        torch.manual_seed(0)
        model = net.build({"name": "identity"}, None).to(ctx.device).train()
        step = train_step(model, net.optimizer(model), big_batch, net.loss, ctx, dtype)
        flops = gpt_flops_per_token(model, t) * b * t
        results.append(mfu_row(ctx, f"GPT {net.shape.split(', AdamW')[0]}", step, flops, dtype, "step", "AdamW step"))
    return results


__all__ = ["GROUP", "gpt_flops_per_token", "matmul", "mfu_row", "run"]
