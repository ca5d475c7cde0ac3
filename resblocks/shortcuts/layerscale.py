"""LayerScale as a rule: the identity shortcut with a LayerScale on the branch output."""

from __future__ import annotations

import torch

from ..errors import ConfigError
from ..schedules import layerscale_init
from . import SHORTCUTS
from .base import Shortcut, Site


@SHORTCUTS.register("layerscale")
class LayerScaleShortcut(Shortcut):
    """``x_{l+1} = x_l + diag(lambda_l) F(x_l)``, ``lambda_l`` in R^D learned, init ``epsilon``.

    Touvron et al. 2021, "Going deeper with Image Transformers" (CaiT, arXiv 2103.17239), eq. in
    Sec. 2.1 (one diagonal per sub-layer: attention and FFN). ``init_values=None`` takes CaiT's
    rule by depth in blocks (:func:`resblocks.schedules.layerscale_init` of ``site.blocks``).

    The scale is the same :class:`~resblocks.modifiers.LayerScale` as the branch-output modifier
    ``layer_scale_init`` (which composes with any rule); this name is ``identity`` plus that modifier.
    """

    def __init__(self, site: Site, *, init_values: float | None = None) -> None:
        super().__init__(site)
        if init_values is None:
            init_values = layerscale_init(site.blocks)
        if not init_values > 0:
            raise ConfigError(f"shortcut.init_values: {init_values!r}; valid: a float > 0 or null (CaiT's rule)")
        from ..modifiers import LayerScale  # here: resblocks.modifiers imports this package

        self.ls = LayerScale(site, init_values)

    def state(self, x: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """``{"layer_scale": mean_c |lambda_c|}`` (:meth:`resblocks.modifiers.LayerScale.state`)."""
        return self.ls.state()

    def forward(self, fx: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return x + self.ls(fx)
