"""Position-wise feed-forward branch (Vaswani et al. 2017, arXiv 1706.03762, eq. 2; GELU as in GPT-2/ViT)."""

from __future__ import annotations

import torch
from torch import nn

from ._output import zero_output_


class Mlp(nn.Module):
    """``dropout(fc2(act(fc1(x))))`` (nanoGPT's ``MLP``)."""

    def __init__(
        self,
        dim: int,
        hidden: int,
        *,
        act_layer: type[nn.Module] = nn.GELU,
        bias: bool = True,
        dropout: float = 0.0,
        zero_init_last: bool = False,
    ) -> None:
        super().__init__()
        self.zero_init_last = zero_init_last  # read by Residual to refuse a second zero gate
        self.fc1 = nn.Linear(dim, hidden, bias=bias)
        self.act = act_layer()
        self.fc2 = nn.Linear(hidden, dim, bias=bias)
        self.drop = nn.Dropout(dropout)
        if zero_init_last:
            zero_output_(self)

    def output_layer(self) -> nn.Linear:
        """The residual output projection (GPT-2 scaled init, ``zero_init_last``)."""
        return self.fc2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.fc2(self.act(self.fc1(x))))

    @torch.no_grad()
    def deepnorm_init_(self, beta: float) -> None:
        """DeepNet (Wang et al. 2022, arXiv 2203.00555, Alg. 1): scale both FFN weights by beta."""
        self.fc1.weight.mul_(beta)
        self.fc2.weight.mul_(beta)
