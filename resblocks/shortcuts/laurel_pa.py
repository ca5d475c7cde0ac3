"""LAuReL-PA: a learned mix of the previous residual-stream activations of the same shape."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ..errors import ConfigError
from .base import Site
from .laurel_lr import LowRank
from .weighted_sum import weighted_sum

# One leaf op in a torch.fx graph: the fused autograd function checks its arguments in Python.
torch.fx.wrap("weighted_sum")


class PreviousActivations(nn.Module):
    """``sum_{j=0}^{k-1} gamma_j h_j(x_{i-j})`` (LAuReL eq. 4; eq. 6 with per-lag low-rank ``h_j``).

    Menghani et al. 2024, "LAuReL: Learned Augmented Residual Layer" (arXiv 2411.07501), Sec. 2.3.
    ``x_i`` is this sub-layer's stream input; ``x_{i-1}, ..., x_{i-k+1}`` are the stream inputs of
    the earlier sub-layers, passed in by the caller (``prev``, newest first; see
    :func:`~resblocks.shortcuts.base.previous_activations`): only the same resolution stage, and fewer
    than ``k - 1`` near its start. A block used alone gets none and uses ``x_i`` only.

    ``rank=None``: ``h`` is the identity and ``gamma`` starts at 0 (the term is 0 at step 0).
    ``rank=r``: ``h_j`` is a low-rank pair per lag with a zero up-projection and ``gamma`` starts
    at 1, so exactly one factor is zero (two zero factors would never receive a gradient).
    """

    def __init__(self, site: Site, *, k: int = 3, rank: int | None = None, init: str = "xavier") -> None:
        super().__init__()
        if not (isinstance(k, int) and k >= 1):
            raise ConfigError(f"shortcut.k: {k!r}; valid: an integer >= 1 (paper: 3)")
        self.k = k
        self.h = None if rank is None else LowRank(site, k, rank=rank, init=init)
        # gamma 0 with the identity h, 1 with a low-rank h (whose up-projection starts at 0).
        self.gamma = nn.Parameter(torch.full((k,), 0.0 if rank is None else 1.0))

    @torch.no_grad()
    def reset_parameters(self) -> None:
        self.gamma.fill_(0.0 if self.h is None else 1.0)
        if self.h is not None:
            self.h.reset_parameters()

    @torch.no_grad()
    def state(self) -> dict[str, torch.Tensor]:
        """``{"gamma_0": gamma_0, ..., "gamma_{k-1}": ...}``, lag j weighting ``h_j(x_{i-j})`` (``gamma_0`` on
        ``x_i`` itself). All k are reported, also where the stage has fewer earlier inputs to use them."""
        return {f"gamma_{j}": g for j, g in enumerate(self.gamma.detach().to(torch.float32, copy=True).unbind(0))}

    def forward(
        self, x: torch.Tensor, prev: Sequence[torch.Tensor] = (), add: torch.Tensor | None = None
    ) -> torch.Tensor:
        """``x_i + sum_j gamma_j h_j(x_{i-j})`` (the stream term of eq. 4), plus ``add`` if given.

        With the identity ``h``, ``x_i`` and ``add`` join the weighted sum (weight ``1 + gamma_0`` on
        ``x_i``, ``add`` as its base): one fused pass instead of three, forward and backward.
        """
        lags = [x, *prev[: self.k - 1]]  # newest (x itself) first
        gamma = self.gamma[: len(lags)]
        if self.h is None:
            return weighted_sum(torch.cat([gamma[:1] + 1.0, gamma[1:]]), lags, base=add)
        xs = self.h(torch.stack(lags))  # [n, *x.shape]: every lag's low-rank map in one batched op
        g = x + torch.tensordot(gamma.to(xs.dtype), xs, dims=1)
        return g if add is None else add + g

    def extra_repr(self) -> str:
        return f"k={self.k}, h={'identity' if self.h is None else 'low_rank'}"
