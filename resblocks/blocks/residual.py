"""The one residual wrapper every block in the library is made of.

``out = post(shortcut(branch_out(branch_norm(F(pre_norm(x)))), downsample(x)))`` with
``post = post_act(post_norm(.))`` and ``branch_out`` the modifiers' slot (LayerScale, stochastic depth). The norm slots follow x-transformers' decomposition
(pre-branch, post-branch, post-main) and express every placement by name, see
:func:`norm_slots`. Optional parts collapse to ``nn.Identity``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from torch.utils.checkpoint import checkpoint

from ..compat import check_residual
from ..errors import ConfigError
from ..shortcuts import Hiddens, Shortcut, Site, previous_activations

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
    """One residual sub-layer: branch F, branch-output modifiers, shortcut rule, optional norms, shape adapter.

    ``out = post_act(post_norm(rule(branch_out(branch_norm(F(pre_norm(x)))), downsample(x))))``.

    Args:
        branch: F, called as ``branch(pre_norm(x), **branch_kwargs)``.
        shortcut: the rule merging the branch output with the (downsampled) stream.
        pre_norm: norm slot before F (Pre-LN, Peri-LN; a pre-act conv block's BN-ReLU).
        branch_norm: norm slot on F's output (Peri-LN, res-post-LN).
        post_norm: norm slot after the merge (Post-LN).
        downsample: shape adapter for the stream where the sub-layer changes its shape.
        post_act: activation after the merge (post-activation ResNets' ReLU).
        branch_out: the branch-output slot, :func:`resblocks.modifiers.branch_output` (LayerScale,
            stochastic depth), applied after ``branch_norm`` and before the rule.
        placement: what the norm slots express (``pre_ln``, ..., ``pre_act``/``post_act`` for conv
            blocks); used by the compatibility checks, ``None`` for hand-wired slots.
        shared_pre_norm: the downsample reads ``pre_norm(x)`` as F does (pre-activation conv blocks where
            the shape changes: ``rule(F(a), downsample(a))``, ``a = ReLU(BN(x))``, the authors' code), so
            the un-normalised stream never feeds a conv.

    Rules that read earlier activations (``shortcut.num_previous > 0``, LAuReL-PA) get them from the
    ``hiddens`` argument of :meth:`forward`; every sub-layer records its shortcut input there.
    ``stage_start`` is the index of the first sub-layer of this one's resolution stage (set by the CNN
    stage builder; 0 where the stream keeps its shape): PA reads no entry before it, a static bound that
    keeps the forward traceable by torch.fx.

    ``grad_checkpointing = True`` (a model's ``set_grad_checkpointing()``) recomputes the sub-layer in the
    backward (non-reentrant ``torch.utils.checkpoint``); every sub-layer is a pure function of its inputs,
    ``hiddens`` included, so the recomputation is exact.
    """

    stage_start: int = 0
    grad_checkpointing: bool = False

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
        branch_out: nn.Module | None = None,
        placement: str | None = None,
        shared_pre_norm: bool = False,
    ) -> None:
        super().__init__()
        self.pre_norm = pre_norm or nn.Identity()
        self.branch = branch
        self.branch_norm = branch_norm or nn.Identity()
        self.branch_out = branch_out or nn.Identity()
        self.downsample = downsample or nn.Identity()
        self.shortcut = shortcut
        self.post_norm = post_norm or nn.Identity()
        self.post_act = post_act or nn.Identity()
        self.placement = placement
        self.shared_pre_norm = shared_pre_norm
        check_residual(shortcut, branch, placement=placement, branch_out=self.branch_out)
        shortcut.init_branch(branch)

    @property
    def site(self) -> Site:
        """The rule's :class:`~resblocks.shortcuts.Site`: width, layout, position in the network."""
        return self.shortcut.site

    def forward(self, x: torch.Tensor, *, hiddens: Hiddens | None = None, **branch_kwargs: Any) -> torch.Tensor:
        if self.grad_checkpointing and torch.is_grad_enabled():
            return checkpoint(self._forward, x, hiddens=hiddens, use_reentrant=False, **branch_kwargs)
        return self._forward(x, hiddens=hiddens, **branch_kwargs)

    def _forward(self, x: torch.Tensor, *, hiddens: Hiddens | None = None, **branch_kwargs: Any) -> torch.Tensor:
        a = self.pre_norm(x)
        fx = self.branch_out(self.branch_norm(self.branch(a, **branch_kwargs)))
        sx = self.downsample(a if self.shared_pre_norm else x)
        n = self.shortcut.num_previous
        if n:
            prev = previous_activations(hiddens, self.site.index, sx, n, first=self.stage_start)
            merged = self.shortcut(fx, sx, prev)
        else:
            merged = self.shortcut(fx, sx)
        if hiddens is not None:
            hiddens[self.site.index] = sx
        return self.post_act(self.post_norm(merged))

    def own_modules(self) -> list[nn.Module]:
        """The modules :meth:`init_weights` initialises: the rule's and the branch-output modifiers'."""
        return [*self.shortcut.modules(), *self.branch_out.modules()]

    @torch.no_grad()
    def init_weights(self) -> None:
        """Re-initialise what the sub-layer owns beyond F: the rule's parameters, the modifiers, then the
        rule's branch init (DeepNorm's beta). F's own weights and the norms are the model's to initialise,
        before this (GPT's N(0, 0.02), He init for convs)."""
        self.shortcut.reset_parameters()
        for m in self.branch_out.modules():
            if hasattr(m, "reset_parameters"):
                m.reset_parameters()
        self.shortcut.init_branch(self.branch)
