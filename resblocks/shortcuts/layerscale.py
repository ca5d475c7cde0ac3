"""LayerScale: a learned per-channel scale on the branch output, initialised small."""

from __future__ import annotations

import torch
from torch import nn

from ..errors import ConfigError
from ..schedules import layerscale_init
from . import SHORTCUTS
from .base import Shortcut, Site, channel_view


@SHORTCUTS.register("layerscale")
class LayerScaleShortcut(Shortcut):
    """``x_{l+1} = x_l + diag(lambda_l) F(x_l)``, ``lambda_l`` in R^D learned, init ``epsilon``.

    Touvron et al. 2021, "Going deeper with Image Transformers" (CaiT, arXiv 2103.17239), eq. in
    Sec. 2.1 (one diagonal per sub-layer: attention and FFN). ``init_values=None`` takes CaiT's
    rule by depth in blocks (:func:`resblocks.schedules.layerscale_init`): ``site.total // 2``
    blocks for tokens (2 sub-layers each), ``site.total`` for images (1 residual per conv block).
    """

    def __init__(self, site: Site, *, init_values: float | None = None) -> None:
        super().__init__(site)
        if init_values is None:
            blocks = max(1, site.total // 2) if site.layout == "token" else site.total
            init_values = layerscale_init(blocks)
        if not init_values > 0:
            raise ConfigError(f"shortcut.init_values: {init_values!r}; valid: a float > 0 or null (CaiT's rule)")
        self.scale = nn.Parameter(torch.full((site.dim,), float(init_values)))

    def forward(self, fx: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return x + channel_view(self.site, self.scale, fx) * fx
