"""LAuReL-LR: a low-rank linear map over channels, ``up(down(x))``, batched over lags for PA."""

from __future__ import annotations

import math

import torch
from torch import nn

from ..errors import ConfigError
from .base import Site

LR_INITS = ("xavier", "column_orthogonal")


class LowRank(nn.Module):
    """``up_j(down_j(x_j))`` for ``j < lags``: rank-``r`` maps over the channel dim, applied in one batch.

    LAuReL (Menghani et al. 2024, arXiv 2411.07501) eq. 3, ``W = A B + I`` with A, B^T in R^{D x r},
    written as a down-projection ``D -> r`` then an up-projection ``r -> D`` (the paper's "B A x"
    does not type-check). Init, Sec. 3.3: the down factor by ``"xavier"`` (the paper's ResNet run)
    or ``"column_orthogonal"`` (its LLM runs: ``A_ij = 1/sqrt(r D)`` if ``i mod r == j`` else 0);
    the up factor is zero (LoRA-style), so the map is exactly 0 at step 0.

    Weights are stacked ``down: [lags, r, D]``, ``up: [lags, D, r]``; the input carries a leading
    lag dim (``[n, *x.shape]``, n <= lags) and one einsum per factor handles all lags and both
    layouts (channels last for tokens, dim 1 of each ``[B, C, H, W]`` for images).
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
        self.up = nn.Parameter(torch.zeros(lags, site.dim, rank))
        self.init = init
        with torch.no_grad():
            for down in self.down:  # [r, D] each: Xavier's fans must not see the lag dim
                if init == "xavier":
                    nn.init.xavier_uniform_(down)
                else:
                    d = torch.arange(site.dim)
                    down.zero_()[d % rank, d] = 1.0 / math.sqrt(rank * site.dim)
        if site.layout == "token":
            self._down_eq, self._up_eq = "k...d,krd->k...r", "k...r,kdr->k...d"
        else:
            self._down_eq, self._up_eq = "kbd...,krd->kbr...", "kbr...,kdr->kbd..."

    def forward(self, xs: torch.Tensor) -> torch.Tensor:
        n = xs.shape[0]
        h = torch.einsum(self._down_eq, xs, self.down[:n].to(xs.dtype))
        return torch.einsum(self._up_eq, h, self.up[:n].to(xs.dtype))

    def extra_repr(self) -> str:
        lags, rank, dim = self.down.shape
        return f"dim={dim}, rank={rank}, lags={lags}, init={self.init}"
