"""Highway shortcut: a learned element-wise gate between the branch and the carried stream."""

from __future__ import annotations

import torch
from torch import nn

from . import SHORTCUTS
from .base import Shortcut, Site, channel_linear


@SHORTCUTS.register("highway")
class HighwayShortcut(Shortcut):
    """``y = T(x) * F(x) + (1 - T(x)) * x`` with ``T(x) = sigmoid(W_T x + b_T)`` element-wise.

    Srivastava, Greff, Schmidhuber 2015, "Highway Networks" (arXiv 1505.00387), eqs. 2-3 with the
    carry gate ``C = 1 - T``. ``W_T`` is a channel map (Linear for tokens, 1x1 conv for images).
    ``gate_bias`` initialises ``b_T``: negative values bias the block towards carrying x ("-1, -2
    and -3 for depth approximately 10, 20 and 30", arXiv 1507.06228). Adds D^2 + D parameters.
    """

    def __init__(self, site: Site, *, gate_bias: float = -2.0) -> None:
        super().__init__(site)
        self.gate_bias = float(gate_bias)
        self.gate = channel_linear(site, site.dim, site.dim, bias=True)
        nn.init.constant_(self.gate.bias, gate_bias)

    @torch.no_grad()
    def reset_parameters(self) -> None:
        self.gate.reset_parameters()
        nn.init.constant_(self.gate.bias, self.gate_bias)

    @torch.no_grad()
    def state(self, x: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """``{"gate_bias": mean(b_T), "gate": mean(T(x))}``; ``gate`` only when ``x`` (the forward's stream
        input) is given: T depends on the input, so it is recomputed from it here, at the cost of one gate
        matmul, only when someone asks (nothing is kept by the forward). The mean runs over every element
        (samples, positions, channels); under autocast T is computed as the forward computes it."""
        out = {"gate_bias": self.gate.bias.detach().float().mean()}
        if x is not None:
            out["gate"] = torch.sigmoid(self.gate(x)).mean(dtype=torch.float32)
        return out

    def forward(self, fx: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        # lerp(x, fx, T) = x + T * (fx - x) = T * fx + (1 - T) * x, in one fused op. lerp wants one dtype:
        # under autocast fx and T come out bf16 while the stream x stays fp32, so promote as fx + x would.
        dtype = torch.promote_types(fx.dtype, x.dtype)
        return torch.lerp(x.to(dtype), fx.to(dtype), torch.sigmoid(self.gate(x)).to(dtype))
