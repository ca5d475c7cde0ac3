"""The plain-PyTorch training step the benchmarks time, and what a step costs in parameters and memory."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from .context import Context

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def lm_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Next-token cross-entropy in fp32 (as ``recipes.modules.CausalLM``)."""
    return F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten())


def cls_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(logits.float(), targets)


def train_step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    batch: tuple[torch.Tensor, torch.Tensor],
    loss_fn: LossFn,
    ctx: Context,
    dtype: str,
) -> Callable[[], torch.Tensor]:
    """One optimiser step on a fixed batch: autocast forward, backward, step, ``zero_grad(set_to_none)``.

    The loss is returned, not read (no host sync inside the timed call).
    """
    inputs, targets = batch

    def call() -> torch.Tensor:
        with ctx.autocast(dtype):
            loss = loss_fn(model(inputs), targets)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return loss.detach()

    return call


def num_params(model: nn.Module) -> int:
    """Distinct parameters (tied weights once)."""
    return sum(p.numel() for p in {id(p): p for p in model.parameters()}.values())


def saved_activation_bytes(forward: Callable[[], torch.Tensor], model: nn.Module) -> int:
    """Bytes of distinct tensors autograd keeps for the backward of ``forward()``, parameters excluded.

    Activation memory is what a shortcut rule adds at run time (its parameters are counted
    separately). Counted by storage, so a tensor saved by several ops, or views of one, count once.
    Device-independent, so it means the same on a CPU as on a GPU.
    """
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    storages: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        s = t.untyped_storage()
        if s.data_ptr() not in params:
            storages[s.data_ptr()] = s.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = forward()
    del out
    return sum(storages.values())


def peak_step_bytes(step: Callable[[], object], device: torch.device) -> int | None:
    """Peak allocated bytes above the starting point during one step, on CUDA (None elsewhere)."""
    if device.type != "cuda":
        return None
    torch.cuda.synchronize()
    base = torch.cuda.memory_allocated(device)
    torch.cuda.reset_peak_memory_stats(device)
    step()
    torch.cuda.synchronize()
    return torch.cuda.max_memory_allocated(device) - base


__all__ = ["cls_loss", "lm_loss", "num_params", "peak_step_bytes", "saved_activation_bytes", "train_step"]
