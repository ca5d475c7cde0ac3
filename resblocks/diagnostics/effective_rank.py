"""Effective rank of a feature matrix (Roy & Vetterli 2007), on a bounded, deterministic sample of rows.

Roy & Vetterli 2007, "The effective rank: a measure of effective dimensionality" (EUSIPCO), Def. 1:
with singular values ``s_1 >= ... >= s_Q`` of a matrix and ``p_k = s_k / sum_j s_j``,
``erank = exp(H(p))``, ``H(p) = -sum_k p_k log p_k`` (``0 log 0 = 0``). It lies in ``[1, rank]``; it is ``Q``
exactly when all singular values are equal. Zhang et al. 2024 (arXiv 2404.10947) use it to relate the
shortcut to the quality of the learned features. The matrix is not centred (the definition's own form).

Features are rows: tokens x D for a ``[..., D]`` stream, spatial positions (of every sample, pooled
together) x C for a ``[B, C, H, W]`` map.
"""

from __future__ import annotations

import torch


def feature_rows(features: torch.Tensor, layout: str, max_rows: int) -> torch.Tensor:
    """At most ``max_rows`` rows of ``features`` as a float32 ``[n, D]`` copy, evenly spaced over all rows.

    ``layout="token"``: rows are the ``[..., D]`` vectors; ``"image"``: rows are the C-vectors of every
    position ``(b, h, w)``. The sample is deterministic (rows ``floor(j N / n)``): no random draw, so the
    model's random state (dropout, stochastic depth) is untouched.
    """
    f = features.detach()
    if layout == "token":
        flat = f.reshape(-1, f.shape[-1])
        n_all = flat.shape[0]
    else:
        flat = f.flatten(2)  # [B, C, H*W], a view for contiguous and channels-last maps alike
        n_all = flat.shape[0] * flat.shape[2]
    n = min(max_rows, n_all)
    idx = torch.arange(n, device=f.device) * n_all // n
    if layout == "token":
        rows = flat[idx]
    else:
        positions = flat.shape[2]
        rows = flat[idx // positions, :, idx % positions]  # [n, C]
    return rows.to(torch.float32, copy=True)


def effective_rank(rows: torch.Tensor) -> torch.Tensor:
    """``exp(-sum_k p_k log p_k)``, ``p = s / sum(s)`` for the singular values ``s`` of ``rows`` (float32).

    NaN for an all-zero matrix. ``torch.linalg.svdvals`` may synchronise with the host on GPUs: call it
    after the step, not inside a forward pass.
    """
    s = torch.linalg.svdvals(rows.to(torch.float32))
    total = s.sum()
    p = s / total
    entropy = -torch.where(p > 0, p * torch.log(p), torch.zeros_like(p)).sum()
    return torch.where(total > 0, torch.exp(entropy), torch.full_like(total, torch.nan))


__all__ = ["effective_rank", "feature_rows"]
