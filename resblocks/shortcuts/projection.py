"""Projection shortcut: a learned channel map on the stream at every block."""

from __future__ import annotations

import torch
from torch import nn

from . import SHORTCUTS
from .base import Shortcut, Site, channel_linear


@SHORTCUTS.register("projection")
class ProjectionShortcut(Shortcut):
    """``x_{l+1} = F(x_l) + P x_l`` with a learned ``D x D`` projection P on *every* shortcut.

    He et al. 2016, "Deep Residual Learning for Image Recognition" (arXiv 1512.03385), eq. 2 with
    ``W_s`` used everywhere: option C of Sec. 4.1 / Table 3. Images: 1x1 conv + BatchNorm (as the
    paper's projection shortcuts); tokens: ``nn.Linear`` without bias.

    Shape-changing shortcuts (option A zero-padding, option B projection only where the shape
    changes) are not this rule: they live in the block's ``downsample`` slot, applied to x before
    any shortcut rule sees it. The paper found option C only marginally better than B at the cost
    of D^2 parameters per block, and it loses the clean identity path.
    """

    def __init__(self, site: Site) -> None:
        super().__init__(site)
        self.proj = channel_linear(site, site.dim, site.dim, bias=False)
        self.norm = nn.BatchNorm2d(site.dim) if site.layout == "image" else nn.Identity()

    def forward(self, fx: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return fx + self.norm(self.proj(x))
