"""Decayed identity shortcut: a fixed, depth-scheduled weight below 1 on the stream."""

from __future__ import annotations

import torch

from ..schedules import decayed_alphas
from . import SHORTCUTS
from .base import Shortcut, Site


@SHORTCUTS.register("decayed")
class DecayedShortcut(Shortcut):
    """``x_{l+1} = alpha_l x_l + F(x_l)`` with a fixed (not learned) ``alpha_l`` buffer.

    Zhang et al. 2024, "Residual Connections Harm Generative Representation Learning"
    (arXiv 2404.10947), Sec. 3: ``alpha_l`` falls linearly from 1 (first sub-layer) to ``alpha_min``
    (last), see :func:`resblocks.schedules.decayed_alphas`. ``site.total`` counts the network's
    residual sub-layers (2 per Transformer block, as the official code's ``2*depth``).

    ``alpha_min`` in (0, 1]; default 0.7 (the official MAE command; the paper sweeps 0.6-0.8, and
    <= 0.4 is unstable). Pitfall: the paper pairs it with zero-initialised branch output layers
    (feature norms blow up early otherwise) and learned alphas drift back to 1, hence a buffer.
    """

    def __init__(self, site: Site, *, alpha_min: float = 0.7) -> None:
        super().__init__(site)
        alphas = decayed_alphas(site.total, alpha_min, key="shortcut.alpha_min")
        # Not persistent: derived from the config, so a checkpoint never overrides the schedule.
        self.register_buffer("alpha", alphas[site.index].clone(), persistent=False)

    @torch.no_grad()
    def state(self, x: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """``{"alpha": alpha_l}``, the fixed weight on the stream."""
        return {"alpha": self.alpha.detach().to(torch.float32, copy=True)}

    def forward(self, fx: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return torch.addcmul(fx, x, self.alpha)  # fx + alpha * x in one fused pass
