"""ReZero: the branch is gated by one learned scalar that starts at zero."""

from __future__ import annotations

import torch
from torch import nn

from . import SHORTCUTS
from .base import Shortcut, Site


@SHORTCUTS.register("rezero")
class ReZeroShortcut(Shortcut):
    """``x_{i+1} = x_i + alpha_i F(x_i)``, one learned scalar ``alpha_i`` per sub-layer, init 0.

    Bachlechner et al. 2020, "ReZero is All You Need: Fast Convergence at Large Depth"
    (arXiv 2003.04887), eq. 5. Meant for norm-free stacks (norm placement ``none``). The official
    code shares one ``resweight`` between a layer's attention and FFN; here each residual
    sub-layer has its own (the equation's form, and what SkipInit does per branch).

    With ``init == 0`` the block starts at the identity, so a zero-initialised last layer of the
    branch would leave both at zero with no gradient: ``gates_branch_at_zero`` tells the
    :class:`~resblocks.blocks.residual.Residual` wrapper to refuse that combination.
    """

    gates_branch_at_zero = True

    def __init__(self, site: Site, *, init: float = 0.0) -> None:
        super().__init__(site)
        self.init = float(init)
        self.alpha = nn.Parameter(torch.tensor(self.init))
        self.gates_branch_at_zero = init == 0.0

    @torch.no_grad()
    def reset_parameters(self) -> None:
        self.alpha.fill_(self.init)

    @torch.no_grad()
    def state(self, x: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """``{"alpha": alpha_i}``, the learned gate on F(x)."""
        return {"alpha": self.alpha.detach().to(torch.float32, copy=True)}

    def forward(self, fx: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return x + self.alpha * fx
