"""``sum_j w_j t_j`` with learned scalar weights, in the fewest passes over the activations.

LAuReL's residual weights (``alpha F(x) + beta x``) and previous-activation mix
(``sum_j gamma_j x_{i-j}``) are both this sum. Written with plain ops, autograd runs a multiply and
an add per term forward, and per term backward a multiply for ``t_j``'s gradient plus a multiply
and a reduction (with a full-size temporary) for ``w_j``'s; stacking the terms first copies them
all. :func:`weighted_sum` does one fused multiply-add per term forward and, backward, one multiply
per term plus one dot product (no temporary) per weight: about half the memory traffic, which is
what these rules cost (``benchmarks/``, group ``shortcuts``). No host syncs; works under autocast:
the result takes the promoted dtype of the terms, as ``w_0 t_0 + w_1 t_1`` would, and the products
are formed in that dtype (a bf16 term times its weight is not rounded to bf16 first).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import torch


def _dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``(a * b).sum()`` in fp32: a BLAS dot when both are contiguous fp32 (no temporary), else a product
    and an fp32 sum (torch's CPU bf16 dot is ~9x slower than that, ``benchmarks/`` group ``shortcuts``)."""
    if a.dtype == b.dtype == torch.float32 and a.is_contiguous() and b.is_contiguous():
        return torch.dot(a.view(-1), b.view(-1))
    return torch.sum(a * b, dtype=torch.float32)


class _WeightedSum(torch.autograd.Function):
    @staticmethod
    def forward(  # type: ignore[override]
        ctx, weights: torch.Tensor, base: torch.Tensor | None, *terms: torch.Tensor
    ) -> torch.Tensor:
        # Start from a term already in the result dtype (under autocast: the fp32 stream, not the bf16
        # branch output), so every product is computed and accumulated in that dtype.
        dtype = functools.reduce(torch.promote_types, (t.dtype for t in terms))
        first = next(j for j, t in enumerate(terms) if t.dtype == dtype)
        # A base is added by the first multiply-add (promoting to the common dtype, as ``base + ...`` would).
        out = terms[first] * weights[first] if base is None else torch.addcmul(base, terms[first], weights[first])
        for j, (w, t) in enumerate(zip(weights, terms)):
            if j != first:
                out.addcmul_(t, w)
        # The terms are needed only for the weights' gradient (the terms' own gradients are grad * w_j).
        ctx.save_for_backward(weights, *(terms if ctx.needs_input_grad[0] else ()))
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:  # type: ignore[override]
        weights, *terms = ctx.saved_tensors
        # grad * w_j in grad's dtype; autograd casts it to t_j's dtype (bf16 branch outputs under autocast).
        grad_terms = [grad * w.to(grad.dtype) if needed else None for w, needed in zip(weights, ctx.needs_input_grad[2:])]
        grad_w = torch.stack([_dot(grad, t) for t in terms]).to(weights.dtype) if terms else None
        return (grad_w, grad if ctx.needs_input_grad[1] else None, *grad_terms)


def weighted_sum(
    weights: torch.Tensor, terms: Sequence[torch.Tensor], base: torch.Tensor | None = None
) -> torch.Tensor:
    """``base + sum_j weights[j] * terms[j]`` for a 1-D ``weights`` (scalar per term) and same-shape tensors.

    Equal to the plain expression (exactly so for weights of 1); gradients flow to the weights, to
    every term and to ``base`` (optional: a term of weight 1 that costs no multiply, forward or backward).
    """
    if weights.ndim != 1 or weights.shape[0] != len(terms):
        raise ValueError(f"weighted_sum: {tuple(weights.shape)} weights for {len(terms)} terms; valid: one scalar per term")
    return _WeightedSum.apply(weights, base, *terms)


__all__ = ["weighted_sum"]
