"""The one residual wrapper every block in the library is made of.

``out = post(shortcut(branch_norm(F(pre_norm(x))), downsample(x)))`` with
``post = post_act(post_norm(.))``. The norm slots follow x-transformers' decomposition
(pre-branch, post-branch, post-main) and express every placement by name, see
:func:`norm_slots`. Optional parts collapse to ``nn.Identity``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from ..errors import ConfigError
from ..shortcuts import Shortcut

NORM_PLACEMENTS = ("post_ln", "pre_ln", "peri_ln", "res_post_ln", "none")


def norm_slots(placement: str, norm: Callable[[int], nn.Module], dim: int) -> tuple[nn.Module, nn.Module, nn.Module]:
    """``(pre_norm, branch_norm, post_norm)`` for a named placement.

    * ``post_ln``:     ``Norm(x + F(x))``          (Vaswani et al. 2017)
    * ``pre_ln``:      ``x + F(Norm(x))``          (Xiong et al. 2020; needs a final norm in the model)
    * ``peri_ln``:     ``x + Norm(F(Norm(x)))``    (Peri-LN / "sandwich", Gemma 2/3)
    * ``res_post_ln``: ``x + Norm(F(x))``          (timm ``ResPostBlock``, Swin-V2; *not* Post-LN)
    * ``none``:        ``x + F(x)``                (ReZero's norm-free setting)
    """
    if placement not in NORM_PLACEMENTS:
        raise ConfigError(f"norm: unknown placement {placement!r}; valid: {', '.join(NORM_PLACEMENTS)}")
    ident = nn.Identity
    pre = norm(dim) if placement in ("pre_ln", "peri_ln") else ident()
    branch = norm(dim) if placement in ("peri_ln", "res_post_ln") else ident()
    post = norm(dim) if placement == "post_ln" else ident()
    return pre, branch, post


def needs_final_norm(placement: str) -> bool:
    """Pre-LN, Peri-LN and res-post-LN streams are un-normalised: the model adds a final norm before its head."""
    return placement in ("pre_ln", "peri_ln", "res_post_ln")


class Residual(nn.Module):
    """One residual sub-layer: branch F, shortcut rule, optional norms, shape adapter and activation."""

    def __init__(
        self,
        branch: nn.Module,
        shortcut: Shortcut,
        *,
        pre_norm: nn.Module | None = None,
        branch_norm: nn.Module | None = None,
        post_norm: nn.Module | None = None,
        downsample: nn.Module | None = None,
        post_act: nn.Module | None = None,
    ) -> None:
        super().__init__()
        self.pre_norm = pre_norm or nn.Identity()
        self.branch = branch
        self.branch_norm = branch_norm or nn.Identity()
        self.downsample = downsample or nn.Identity()
        self.shortcut = shortcut
        self.post_norm = post_norm or nn.Identity()
        self.post_act = post_act or nn.Identity()
        if shortcut.gates_branch_at_zero and getattr(branch, "zero_init_last", False):
            raise ConfigError(
                f"shortcut: {type(shortcut).__name__} starts its gate at zero and the branch's last layer is "
                "zero-initialised too; neither would ever get a gradient. Use one: set zero_init_last=false"
            )
        shortcut.init_branch(branch)

    def forward(self, x: torch.Tensor, **branch_kwargs: Any) -> torch.Tensor:
        fx = self.branch_norm(self.branch(self.pre_norm(x), **branch_kwargs))
        return self.post_act(self.post_norm(self.shortcut(fx, self.downsample(x))))
