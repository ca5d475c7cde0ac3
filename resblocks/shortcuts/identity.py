"""The two reference rules: the identity shortcut and no shortcut at all."""

from __future__ import annotations

import torch

from . import SHORTCUTS
from .base import Shortcut


@SHORTCUTS.register("identity")
class IdentityShortcut(Shortcut):
    """``x_{l+1} = F(x_l) + x_l`` (He et al. 2016, arXiv 1512.03385, eq. 1)."""

    def forward(self, fx: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return fx + x


@SHORTCUTS.register("none")
class NoShortcut(Shortcut):
    """``x_{l+1} = F(x_l)``: the plain network of He et al. 2016 (Fig. 6), for degradation studies."""

    carries_stream = False

    def forward(self, fx: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return fx
