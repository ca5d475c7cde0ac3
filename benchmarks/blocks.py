"""Group ``blocks``: forward+backward of ``resblocks`` blocks vs reference implementations of the same shape.

* ``transformer`` with ``norm="post_ln"`` / ``"pre_ln"`` vs ``nn.TransformerEncoderLayer``
  (``norm_first=False/True``, GELU, no dropout, bidirectional), and, causal, vs the hand-written
  nanoGPT block (:mod:`benchmarks.references`);
* ``basic`` / ``bottleneck`` conv blocks vs torchvision's ``BasicBlock`` / ``Bottleneck``
  (and a stride-2 basic block with a 1x1-conv + BN downsample).

Each pair runs in float32 and under bf16 autocast; the goal is a ratio of at most 1.05. One more row, with no
goal, prices attention-probability dropout: a ``pre_ln`` block at ``dropout=0.1`` (SDPA's dropout on) against the
same block with ``attn_dropout=0`` (outputs dropped only), key-padding mask on, as the text classifier runs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn
from torchvision.models import resnet as tv

import resblocks

from .context import Context, dtype_label
from .references import NanoGPTBlock
from .report import Goal, Result, ratio_result
from .timing import interleaved

GROUP = "blocks"
GOAL = Goal("<=", 1.05)


def fwd_bwd(module: nn.Module, x: torch.Tensor, ctx: Context, dtype: str, **kwargs: Any) -> Callable[[], None]:
    """One forward and backward pass (input gradient included) with a fixed upstream gradient; ``kwargs`` go to
    the module (a ``pad_mask``)."""
    x = x.detach().requires_grad_(True)
    kwargs = {k: v.to(ctx.device) for k, v in kwargs.items()}
    with torch.no_grad(), ctx.autocast(dtype):
        grad = torch.randn_like(module(x, **kwargs))

    def call() -> None:
        module.zero_grad(set_to_none=True)
        x.grad = None
        with ctx.autocast(dtype):
            y = module(x, **kwargs)
        y.backward(grad)

    return call


def _pair(
    ctx: Context, name: str, dtype: str, x: torch.Tensor, cand: nn.Module, ref: nn.Module, ref_label: str, shape: str
) -> Result:
    cand, ref = cand.to(ctx.device).train(), ref.to(ctx.device).train()
    x = x.to(ctx.device)
    t = interleaved({"resblocks": fwd_bwd(cand, x, ctx, dtype), ref_label: fwd_bwd(ref, x, ctx, dtype)}, **ctx.timing())
    return ratio_result(
        t, "resblocks", ref_label, group=GROUP, name=name, goal=GOAL, dtype=dtype_label(dtype), notes=shape,
        data={"shape": shape},
    )  # fmt: skip


def transformer_pairs(ctx: Context) -> list[tuple[str, nn.Module, nn.Module, str, bool]]:
    """``(name, resblocks block, reference, reference label, causal)`` for the Transformer comparisons."""
    dim, heads = ctx.pick(32, 256, 256), ctx.pick(2, 4, 4)
    out = []
    for norm in ("post_ln", "pre_ln"):
        ours = resblocks.build_block("transformer", dim, heads, norm=norm)
        tel = nn.TransformerEncoderLayer(
            dim, heads, 4 * dim, dropout=0.0, activation="gelu", batch_first=True, norm_first=norm == "pre_ln"
        )
        out.append((f"transformer {norm} vs nn.TransformerEncoderLayer", ours, tel, "torch TEL", False))
        ours_causal = resblocks.build_block("transformer", dim, heads, norm=norm, causal=True)
        nano = NanoGPTBlock(dim, heads, causal=True, post_ln=norm == "post_ln")
        out.append((f"transformer {norm} (causal) vs nanoGPT block", ours_causal, nano, "nanoGPT", True))
    return out


def conv_pairs(ctx: Context) -> list[tuple[str, nn.Module, nn.Module, tuple[int, ...]]]:
    """``(name, resblocks block, torchvision block, input shape)``."""
    c, hw, b = ctx.pick(16, 64, 64), ctx.pick(8, 32, 32), ctx.pick(2, 16, 32)
    planes, bhw, bb = ctx.pick(8, 64, 64), ctx.pick(8, 16, 16), ctx.pick(2, 8, 16)
    bottleneck_in = 4 * planes
    down = nn.Sequential(tv.conv1x1(c, 2 * c, 2), nn.BatchNorm2d(2 * c))
    return [
        ("basic vs torchvision BasicBlock", resblocks.build_block("basic", c, c), tv.BasicBlock(c, c), (b, c, hw, hw)),
        (
            "basic stride 2 vs torchvision BasicBlock",
            resblocks.build_block("basic", c, 2 * c, stride=2),
            tv.BasicBlock(c, 2 * c, stride=2, downsample=down),
            (b, c, hw, hw),
        ),
        (
            "bottleneck vs torchvision Bottleneck",
            resblocks.build_block("bottleneck", bottleneck_in, planes),
            tv.Bottleneck(bottleneck_in, planes),
            (bb, bottleneck_in, bhw, bhw),
        ),
    ]


def run(ctx: Context) -> list[Result]:
    torch.manual_seed(0)
    results = []
    b, t = ctx.pick(2, 8, 16), ctx.pick(16, 128, 128)
    for name, ours, ref, label, _ in transformer_pairs(ctx):
        dim = ours.attn.branch.dim
        for dtype in ctx.dtypes:
            shape = f"B={b} T={t} D={dim} heads={ours.attn.branch.heads}"
            results.append(_pair(ctx, name, dtype, torch.randn(b, t, dim), ours, ref, label, shape))
    dim, heads = ctx.pick(32, 128, 128), 4
    with_attn = resblocks.build_block("transformer", dim, heads, norm="pre_ln", dropout=0.1)
    outputs_only = resblocks.build_block("transformer", dim, heads, norm="pre_ln", dropout=0.1, attn_dropout=0.0)
    shape = f"B={b} T={2 * t} D={dim} heads={heads} pad mask"
    x, pad = torch.randn(b, 2 * t, dim, device=ctx.device), torch.zeros(b, 2 * t, dtype=torch.bool)
    pad[0, -t // 2 :] = True
    blocks = {"attn": with_attn.to(ctx.device).train(), "outputs": outputs_only.to(ctx.device).train()}
    for dtype in ctx.dtypes:
        timings = interleaved({k: fwd_bwd(m, x, ctx, dtype, pad_mask=pad) for k, m in blocks.items()}, **ctx.timing())
        results.append(ratio_result(
            timings, "attn", "outputs", group=GROUP, name="transformer dropout 0.1 on attention too vs attn_dropout=0",
            dtype=dtype_label(dtype), notes=shape, data={"shape": shape},
        ))  # fmt: skip
    for name, ours, ref, shape in conv_pairs(ctx):
        for dtype in ctx.dtypes:
            results.append(_pair(ctx, name, dtype, torch.randn(shape), ours, ref, "torchvision", f"input {list(shape)}"))
    return results


__all__ = ["GOAL", "GROUP", "conv_pairs", "fwd_bwd", "run", "transformer_pairs"]
