"""DeepNorm: an up-weighted identity inside Post-LN plus a down-scaled branch init."""

from __future__ import annotations

import torch
from torch import nn

from ..errors import ConfigError
from . import SHORTCUTS
from .base import Shortcut, Site


@SHORTCUTS.register("deepnorm")
class DeepNormShortcut(Shortcut):
    """``x_{l+1} = LN(alpha x_l + G_l(x_l))`` with ``alpha = (2N)^(1/4)``, branch init scaled by ``beta = (8N)^(-1/4)``.

    Wang et al. 2022, "DeepNet: Scaling Transformers to 1,000 Layers" (arXiv 2203.00555), eq. 4 /
    Fig. 2, constants of the encoder-only (= decoder-only) row of Table 1 with N = layers
    = ``site.blocks``. This rule returns ``alpha x + F(x)``; the LN is the block's ``post_ln``
    placement (``requires_norm``), token layout only. ``alpha`` / ``beta`` override the paper values.

    Init: :meth:`init_branch` calls ``branch.deepnorm_init_(beta)``; the branch scales its own value
    and output projections (attention) or fc1/fc2 (MLP), never q/k, as in torchscale. The
    :class:`~resblocks.blocks.residual.Residual` wrapper calls it once at construction: a model that
    re-initialises its weights afterwards (e.g. an ``apply(_init_weights)``) must call
    ``shortcut.init_branch(branch)`` again after that, or the beta scaling is lost.
    """

    requires_norm = "post_ln"
    layouts = ("token",)

    def __init__(self, site: Site, *, alpha: float | None = None, beta: float | None = None) -> None:
        super().__init__(site)
        layers = site.blocks
        alpha = (2 * layers) ** 0.25 if alpha is None else alpha
        beta = (8 * layers) ** -0.25 if beta is None else beta
        for key, value in (("alpha", alpha), ("beta", beta)):
            if not value > 0:
                raise ConfigError(f"shortcut.{key}: {value!r}; valid: a float > 0 or null (paper value)")
        self.beta = float(beta)
        self._alpha = float(alpha)  # for repr without reading the buffer back from the device
        self.register_buffer("alpha", torch.tensor(float(alpha)), persistent=False)

    def init_branch(self, branch: nn.Module) -> None:
        init = getattr(branch, "deepnorm_init_", None)
        if init is None:
            raise ConfigError(
                f"shortcut: deepnorm needs a branch with deepnorm_init_(beta); {type(branch).__name__} has none"
            )
        init(self.beta)

    @torch.no_grad()
    def state(self, x: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """``{"alpha": alpha}``, the fixed up-weighting of the stream, (2N)^(1/4) by default."""
        return {"alpha": self.alpha.detach().to(torch.float32, copy=True)}

    def forward(self, fx: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return self.alpha * x + fx

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, alpha={self._alpha:.4g}, beta={self.beta:.4g}"
