"""Branch-output modifiers: what acts on F(x) before any shortcut rule merges it, so they compose with every rule.

``Residual`` computes ``rule(drop_path(layer_scale(F(x))), x)``, timm's ``x + drop_path1(ls1(attn(norm1(x))))``
with the rule in place of the ``+``. Both parts are optional and collapse to ``nn.Identity`` when off,
so a model without them has exactly the parameters and the function it had before.

* **LayerScale** (Touvron et al. 2021, "Going deeper with Image Transformers", CaiT, arXiv 2103.17239,
  Sec. 2.1): ``diag(lambda) F(x)``, a learned per-channel scale initialised to ``init_values``.
* **Stochastic depth** (Huang et al. 2016, "Deep Networks with Stochastic Depth", arXiv 1603.09382):
  in training, drop the whole branch output of a sample with probability ``p`` and scale survivors by
  ``1/(1-p)``; identity in eval. ``p`` grows linearly with the block index, ``linspace(0, rate, blocks)``
  (the paper's linear decay of the survival probability; timm's and torchvision's ``drop_path_rate``).
  torchvision's ``StochasticDepth(mode="row")`` does the work.
"""

from __future__ import annotations

import torch
from torch import nn

from .compat import check_modifiers
from .errors import ConfigError
from .shortcuts.base import Site, channel_view


class LayerScale(nn.Module):
    """``diag(lambda) F(x)`` with ``lambda`` in R^D, init ``init_values`` (CaiT, arXiv 2103.17239, Sec. 2.1)."""

    def __init__(self, site: Site, init_values: float) -> None:
        super().__init__()
        self.site, self.init_values = site, float(init_values)
        self.scale = nn.Parameter(torch.empty(site.dim))
        self.reset_parameters()

    @property
    def starts_at_zero(self) -> bool:
        """A zero init gates the branch at zero (read by :func:`resblocks.compat.check_residual`)."""
        return self.init_values == 0.0

    @torch.no_grad()
    def reset_parameters(self) -> None:
        self.scale.fill_(self.init_values)

    @torch.no_grad()
    def state(self) -> dict[str, torch.Tensor]:
        """``{"layer_scale": mean_c |lambda_c|}``: the branch's learned scale, one number per sub-layer."""
        return {"layer_scale": self.scale.detach().float().abs().mean()}

    def forward(self, fx: torch.Tensor) -> torch.Tensor:
        return channel_view(self.site, self.scale, fx) * fx

    def extra_repr(self) -> str:
        return f"dim={self.site.dim}, init_values={self.init_values:g}"


def drop_path_rate_at(site: Site, rate: float) -> float:
    """Stochastic-depth probability of ``site``'s block: ``linspace(0, rate, blocks)[site.block]``.

    Every sub-layer of one block shares its block's rate (timm's ViT and ResNet).
    """
    return rate * site.block / max(site.blocks - 1, 1)


class BranchOutput(nn.Module):
    """``drop_path(layer_scale(fx))``; each part an ``nn.Identity`` when off."""

    def __init__(self, layer_scale: nn.Module, drop_path: nn.Module) -> None:
        super().__init__()
        self.layer_scale = layer_scale
        self.drop_path = drop_path

    def forward(self, fx: torch.Tensor) -> torch.Tensor:
        return self.drop_path(self.layer_scale(fx))


def branch_output(site: Site, *, drop_path_rate: float = 0.0, layer_scale_init: float | None = None) -> nn.Module:
    """The branch-output slot of a residual sub-layer at ``site``: ``nn.Identity`` when nothing is on.

    Args:
        site: the sub-layer's position (its block's index sets the stochastic-depth rate).
        drop_path_rate: the last block's stochastic-depth probability, in [0, 1); 0 is off.
        layer_scale_init: LayerScale's initial value (CaiT: 0.1 up to 18 blocks, 1e-5 at 24, 1e-6 deeper);
            ``None`` is off.
    """
    check_modifiers(drop_path_rate, layer_scale_init)
    p = drop_path_rate_at(site, drop_path_rate)
    ls = nn.Identity() if layer_scale_init is None else LayerScale(site, layer_scale_init)
    if p > 0:
        try:  # imported only when used: the library itself needs torch only
            from torchvision.ops import StochasticDepth
        except ImportError as e:
            raise ConfigError(f"residual.drop_path_rate: {drop_path_rate} needs torchvision; valid: 0 without it") from e
        dp: nn.Module = StochasticDepth(p, mode="row")
    else:
        dp = nn.Identity()
    if isinstance(ls, nn.Identity) and isinstance(dp, nn.Identity):
        return nn.Identity()
    return BranchOutput(ls, dp)


__all__ = ["BranchOutput", "LayerScale", "branch_output", "drop_path_rate_at"]
