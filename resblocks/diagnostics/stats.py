"""The per-tensor statistics of the probe, in float32 on the tensors' device, with no host sync.

Every function returns a 0-dim float32 tensor and reads its inputs without recording them for autograd,
so it can run inside a forward or backward pass (hooks) without changing what autograd saves or computes.
Sums run over the whole tensor (every sample, position and channel of the batch), the form in which
the papers state them: Xiong et al. 2020 (arXiv 2002.04745, Lemma 1) bound ``E ||x_l||^2``, He et al.
2016 (arXiv 1512.03385, Sec. 4.1) discuss the size of the propagated gradients.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch

F32 = torch.float32


def as_f32(t: torch.Tensor) -> torch.Tensor:
    """``t`` detached, in float32 (a copy only if it is not float32 already)."""
    t = t.detach()
    return t if t.dtype == F32 else t.to(F32)


def norm(t: torch.Tensor) -> torch.Tensor:
    """``||t||_2`` over every element, computed in float32.

    A bf16 tensor is copied to float32 first: ``vector_norm(t, dtype=float32)`` on a bf16 tensor was 1.9x slower
    than the copy plus a float32 norm on this project's CPU (a [128, 16, 28, 28] channels-last activation,
    5.4 ms against 2.9 ms, one thread).
    """
    return torch.linalg.vector_norm(as_f32(t))


def rms(t: torch.Tensor) -> torch.Tensor:
    """Root mean square ``sqrt(mean(t^2)) = ||t||_2 / sqrt(numel)``."""
    return norm(t) / math.sqrt(max(t.numel(), 1))


def relative_change(out: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """``||out - ref|| / ||ref||``: how far a sub-layer moves the stream, relative to its size."""
    return norm(out.detach().to(F32) - ref.detach().to(F32)) / norm(ref)


def cosine(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``<a, b> / (||a|| ||b||)`` over the flattened tensors (NaN if either is zero)."""
    a, b = a.detach(), b.detach()
    if a.dtype == b.dtype == F32 and a.is_contiguous() and b.is_contiguous():
        dot = torch.dot(a.view(-1), b.view(-1))  # no activation-sized temporary
    else:
        dot = torch.sum(a.to(F32) * b.to(F32))  # products formed in float32 (bf16 under autocast)
    return dot / (norm(a) * norm(b))


def grad_norm(params: Iterable[torch.nn.Parameter]) -> torch.Tensor | None:
    """``sqrt(sum_p ||p.grad||^2)`` over the parameters that have a gradient; None if none has."""
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return None
    device = grads[0].device
    return torch.linalg.vector_norm(torch.stack([norm(g).to(device) for g in grads]))


__all__ = ["as_f32", "cosine", "grad_norm", "norm", "relative_change", "rms"]
