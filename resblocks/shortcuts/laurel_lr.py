"""LAuReL-LR: a low-rank linear map over channels, ``up(down(x))``, batched over lags for PA."""

from __future__ import annotations

import math

import torch
from torch import nn

from ..errors import ConfigError
from .base import Layout, Site

LR_INITS = ("xavier", "column_orthogonal")

# One leaf op in a torch.fx graph: it builds its output shape from the input's in Python.
torch.fx.wrap("channel_matmul")


class LowRank(nn.Module):
    """``up_j(down_j(x_j))`` for ``j < lags``: rank-``r`` maps over the channel dim, applied in one batch.

    LAuReL (Menghani et al. 2024, arXiv 2411.07501) eq. 3, ``W = A B + I`` with A, B^T in R^{D x r},
    written as a down-projection ``D -> r`` then an up-projection ``r -> D`` (the paper's "B A x"
    does not type-check). Init, Sec. 3.3: the down factor by ``"xavier"`` (the paper's ResNet run)
    or ``"column_orthogonal"`` (its LLM runs: ``A_ij = 1/sqrt(r D)`` if ``i mod r == j`` else 0);
    the up factor is zero (LoRA-style), so the map is exactly 0 at step 0.

    Weights are stacked ``down: [lags, r, D]``, ``up: [lags, D, r]``; the input carries a leading
    lag dim (``[n, *x.shape]``, n <= lags) and one batched matmul per factor handles all lags
    (:func:`channel_matmul`). With ``2r >= D`` the ``D x D`` product ``up @ down`` is applied
    instead: the same map in half the multiply-adds or fewer (a CIFAR ResNet's 16-64 channels
    with r = 16) and one matmul instead of two, forward and backward.
    """

    # Keyword-only arguments are user options (a LAuReL variant exposes the union of its parts');
    # ``lags`` is set by the PA part, not by users.
    def __init__(self, site: Site, lags: int = 1, *, rank: int = 16, init: str = "xavier") -> None:
        super().__init__()
        if not (isinstance(rank, int) and 1 <= rank <= site.dim):
            raise ConfigError(f"shortcut.rank: {rank!r} with width {site.dim}; valid: 1 <= rank <= {site.dim}")
        if init not in LR_INITS:
            raise ConfigError(f"shortcut.init: {init!r}; valid: {', '.join(LR_INITS)}")
        self.down = nn.Parameter(torch.empty(lags, rank, site.dim))
        self.up = nn.Parameter(torch.empty(lags, site.dim, rank))
        self.init = init
        self.layout: Layout = site.layout
        self.merged = 2 * rank >= site.dim
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """Sec. 3.3: the down factor by ``init``, the up factor zero (the map is 0 at step 0)."""
        _, rank, dim = self.down.shape
        for down in self.down:  # [r, D] each: Xavier's fans must not see the lag dim
            if self.init == "xavier":
                nn.init.xavier_uniform_(down)
            else:
                d = torch.arange(dim)
                down.zero_()[d % rank, d] = 1.0 / math.sqrt(rank * dim)
        self.up.zero_()

    def forward(self, xs: torch.Tensor, add: torch.Tensor | None = None) -> torch.Tensor:
        """The map of each lag of ``xs``, plus ``add`` (same shape) if given, summed inside the last matmul."""
        n = xs.shape[0]
        down, up = self.down[:n].to(xs.dtype), self.up[:n].to(xs.dtype)
        if self.merged:
            return channel_matmul(torch.bmm(up, down), xs, self.layout, add)
        return channel_matmul(up, channel_matmul(down, xs, self.layout), self.layout, add)

    def extra_repr(self) -> str:
        lags, rank, dim = self.down.shape
        return f"dim={dim}, rank={rank}, lags={lags}, init={self.init}, merged={self.merged}"


def channel_matmul(w: torch.Tensor, xs: torch.Tensor, layout: Layout, add: torch.Tensor | None = None) -> torch.Tensor:
    """``add + w[j] @ xs[j]`` over the channel dim of each lag ``j``; ``w``: ``[n, out, in]``, ``xs``: ``[n, *x.shape]``.

    Tokens: ``[n, ..., in]`` is one ``[n, M, in]`` batched matmul. Images: each ``[in, H*W]`` plane of
    ``[n, B, in, H, W]`` is multiplied in place, so the NCHW layout needs no permuted copy (an einsum
    moving the channels last copied the input and the output, 2-4x slower on a CIFAR ResNet).
    ``add`` is accumulated by the matmul itself (``baddbmm``: one pass over the output less), except
    under autocast, which would run ``baddbmm`` in bf16 and round ``add`` (the fp32 residual stream).
    """
    n, out = xs.shape[0], w.shape[1]
    shape = (*xs.shape[:-1], out) if layout == "token" else (*xs.shape[:2], out, *xs.shape[3:])
    if layout == "token":
        a, b = xs.flatten(1, -2), w.mT  # [n, M, in] @ [n, in, out]
    else:
        bsz = xs.shape[1]
        a, b = w.unsqueeze(1).expand(n, bsz, *w.shape[1:]).flatten(0, 1), xs.flatten(3).flatten(0, 1)
    if add is None or torch.is_autocast_enabled(xs.device.type):
        y = torch.bmm(a, b).view(shape)
        return y if add is None else add + y
    return torch.baddbmm(add.reshape(a.shape[0], a.shape[1], b.shape[2]), a, b).view(shape)
