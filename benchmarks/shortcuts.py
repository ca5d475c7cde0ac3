"""Group ``shortcuts``: what each shortcut rule costs over ``identity`` in a whole training step.

Two networks: a GPT (6 layers, width 384, 6 heads, context 256, char vocabulary) with AdamW and
a CIFAR ResNet-56 with SGD + momentum. For each rule: the step time ratio to ``identity``
(interleaved, see :mod:`benchmarks.timing`), the parameter overhead, and the activation memory
autograd saves for the backward relative to ``identity`` (on CUDA also the peak allocated memory).
Goals (from the issue): ``decayed`` and ``laurel_rw`` <= 1.02x, ``laurel_lr`` (rank 16-64) <= 1.05x,
``laurel_pa`` (k=3) <= 1.10x. The other rules are measured without a goal (``full`` mode).

With ``torch.compile`` on (``--compile on``; ``auto``: on a GPU in ``full`` mode) the goal variants are also
timed compiled (inductor; the optimiser stays eager) against a compiled ``identity``: rows
``... (compiled)``, reported without a goal, next to the eager ones. Compiling takes minutes per model
on a CPU, so these rows are never part of ``--quick`` unless asked for.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

import resblocks
from resblocks.errors import ConfigError

from .context import Context, dtype_label
from .report import Goal, Result, ratio_result
from .timing import interleaved
from .training import cls_loss, lm_loss, num_params, peak_step_bytes, saved_activation_bytes, train_step

GROUP = "shortcuts"
VOCAB = 65  # tiny-shakespeare's characters


@dataclass(frozen=True)
class Variant:
    label: str
    spec: dict[str, Any]
    goal: Goal | None = None


GOAL_VARIANTS = (
    Variant("decayed", {"name": "decayed"}, Goal("<=", 1.02)),
    Variant("laurel_rw", {"name": "laurel_rw"}, Goal("<=", 1.02)),
    Variant("laurel_lr r=16", {"name": "laurel_lr", "rank": 16}, Goal("<=", 1.05)),
    Variant("laurel_lr r=64", {"name": "laurel_lr", "rank": 64}, Goal("<=", 1.05)),
    Variant("laurel_pa k=3", {"name": "laurel_pa", "k": 3}, Goal("<=", 1.10)),
)
# Every other registered rule, taken from the registry so that a new rule is measured without editing this file.
OTHER_VARIANTS = tuple(
    Variant(n, {"name": n})
    for n in resblocks.SHORTCUTS.names()
    if n != "identity" and n not in {v.spec["name"] for v in GOAL_VARIANTS}
)


@dataclass
class Net:
    """How to build one benchmark network with a given shortcut, and its batch."""

    name: str
    build: Callable[[dict[str, Any], str | None], nn.Module]  # (shortcut spec, norm placement or None)
    batch: Callable[[], tuple[torch.Tensor, torch.Tensor]]
    loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    optimizer: Callable[[nn.Module], torch.optim.Optimizer]
    shape: str


def gpt_net(ctx: Context) -> Net:
    depth, dim, heads, ctx_len = ctx.pick(2, 6, 6), ctx.pick(32, 384, 384), ctx.pick(2, 6, 6), ctx.pick(16, 256, 256)
    batch = ctx.pick(2, 4, 4)  # 1024 tokens a step: ~1 s fp32 on one CPU core

    def build(spec: dict[str, Any], norm: str | None) -> nn.Module:
        extra = {"norm": norm} if norm else {}
        return resblocks.build_model(
            "gpt", vocab_size=VOCAB, block_size=ctx_len, depth=depth, dim=dim, heads=heads, shortcut=spec, **extra
        )

    def make_batch() -> tuple[torch.Tensor, torch.Tensor]:
        ids = torch.randint(0, VOCAB, (batch, ctx_len + 1))
        return ids[:, :-1].contiguous(), ids[:, 1:].contiguous()

    return Net(
        "GPT", build, make_batch, lm_loss, lambda m: torch.optim.AdamW(m.parameters(), lr=1e-4),
        f"{depth} layers, width {dim}, context {ctx_len}, batch {batch}, AdamW",
    )  # fmt: skip


def resnet_net(ctx: Context) -> Net:
    depth, size, batch = ctx.pick(8, 56, 56), ctx.pick(16, 32, 32), ctx.pick(2, 16, 32)

    def build(spec: dict[str, Any], norm: str | None) -> nn.Module:
        return resblocks.build_model("cifar_resnet", depth=depth, num_classes=10, shortcut=spec)

    def make_batch() -> tuple[torch.Tensor, torch.Tensor]:
        return torch.randn(batch, 3, size, size), torch.randint(0, 10, (batch,))

    return Net(
        f"ResNet-{depth}", build, make_batch, cls_loss,
        lambda m: torch.optim.SGD(m.parameters(), lr=0.01, momentum=0.9),
        f"CIFAR ResNet-{depth}, {size}x{size}, batch {batch}, SGD",
    )  # fmt: skip


def variants(ctx: Context) -> tuple[Variant, ...]:
    return GOAL_VARIANTS if ctx.mode != "full" else GOAL_VARIANTS + OTHER_VARIANTS


def _required_norm(spec: dict[str, Any]) -> str | None:
    return resblocks.SHORTCUTS.get(spec["name"]).requires_norm


def _chunks(items: list[Variant], size: int) -> list[list[Variant]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def compiled_rows(ctx: Context) -> bool:
    """Whether to time the compiled models too: ``--compile on``, or ``auto`` on a GPU in ``full`` mode."""
    return ctx.compile if ctx.compile is not None else (ctx.device.type == "cuda" and ctx.mode == "full")


def bench_net(ctx: Context, net: Net, dtype: str, compiled: bool = False) -> list[Result]:
    """Every variant vs ``identity`` (with the norm placement the variant needs) on one network.

    ``compiled``: the goal variants only, each model under ``torch.compile`` (its first step compiles it).
    """
    results: list[Result] = []
    batch = tuple(t.to(ctx.device) for t in net.batch())
    suffix = " (compiled)" if compiled else ""
    # A few models at a time (GPU/CPU memory); each chunk times its own identity reference(s).
    for chunk in _chunks(list(GOAL_VARIANTS if compiled else variants(ctx)), ctx.pick(8, 6, 5)):
        if compiled:
            torch._dynamo.reset()  # one graph per model: do not run into the recompile limit across chunks
        steps: dict[str, Callable[[], Any]] = {}
        models: dict[str, nn.Module] = {}
        refs: dict[str, str] = {}
        failed: dict[str, str] = {}
        for v in chunk:
            norm = _required_norm(v.spec)
            ref = "identity" if norm is None else f"identity ({norm})"
            try:
                torch.manual_seed(0)
                model = net.build(v.spec, norm).to(ctx.device).train()
            except ConfigError as e:
                failed[v.label] = str(e)
                continue
            if ref not in models:
                torch.manual_seed(0)
                models[ref] = net.build({"name": "identity"}, norm).to(ctx.device).train()
            models[v.label], refs[v.label] = model, ref
        for label, model in models.items():
            run_model = torch.compile(model) if compiled else model
            steps[label] = train_step(run_model, net.optimizer(model), batch, net.loss, ctx, dtype)
            if label in refs:
                try:  # one step first: a rule that fails (say, under autocast) gets an error row, not the group
                    steps[label]()
                except Exception as e:  # noqa: BLE001
                    failed[label] = f"error: {type(e).__name__}: {e}".splitlines()[0]
                    del steps[label], refs[label]
        timings = interleaved(steps, **ctx.timing()) if refs else None
        for v in chunk:
            if v.label in failed:
                why = failed[v.label] if failed[v.label].startswith("error") else f"not applicable: {failed[v.label]}"
                results.append(
                    Result(GROUP, f"{net.name}: {v.label}{suffix}", "time ratio", None, dtype=dtype_label(dtype),
                           goal=None if compiled else v.goal, notes=why)  # fmt: skip
                )
                continue
            ref = refs[v.label]
            cand_m, ref_m = models[v.label], models[ref]
            if compiled:  # parameters and saved activations are those of the eager rows
                results.append(
                    ratio_result(
                        timings, v.label, ref, group=GROUP, name=f"{net.name}: {v.label}{suffix}", goal=None,
                        dtype=dtype_label(dtype), notes="torch.compile (inductor), optimiser eager",
                        data={"net": net.shape, "compiled": True},
                    )  # fmt: skip
                )
                continue
            with ctx.autocast(dtype):
                mem_c = saved_activation_bytes(lambda m=cand_m: net.loss(m(batch[0]), batch[1]), cand_m)
                mem_r = saved_activation_bytes(lambda m=ref_m: net.loss(m(batch[0]), batch[1]), ref_m)
            p_c, p_r = num_params(cand_m), num_params(ref_m)
            notes = f"params {100 * (p_c - p_r) / p_r:+.2f}%, saved activations {mem_c / mem_r:.2f}x"
            data = {"params": p_c, "ref_params": p_r, "saved_bytes": mem_c, "ref_saved_bytes": mem_r, "net": net.shape}
            peak_c, peak_r = peak_step_bytes(steps[v.label], ctx.device), peak_step_bytes(steps[ref], ctx.device)
            if peak_c is not None and peak_r:
                notes += f", peak memory {peak_c / peak_r:.2f}x"
                data |= {"peak_bytes": peak_c, "ref_peak_bytes": peak_r}
            results.append(
                ratio_result(
                    timings, v.label, ref, group=GROUP, name=f"{net.name}: {v.label}", goal=v.goal,
                    dtype=dtype_label(dtype), notes=notes, data=data,
                )  # fmt: skip
            )
        for m in models.values():
            m.zero_grad(set_to_none=True)
        del steps, models
    return results


def run(ctx: Context) -> list[Result]:
    results = []
    for make in (gpt_net, resnet_net):
        net = make(ctx)
        for dtype in ctx.dtypes:
            results += bench_net(ctx, net, dtype)
            if compiled_rows(ctx):
                results += bench_net(ctx, net, dtype, compiled=True)
    return results


__all__ = ["GOAL_VARIANTS", "GROUP", "OTHER_VARIANTS", "Variant", "compiled_rows", "gpt_net", "resnet_net", "run", "variants"]
