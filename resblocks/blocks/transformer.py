"""The Transformer block: an attention and an MLP residual sub-layer, each with its own shortcut and norms."""

from __future__ import annotations

import torch
from torch import nn

from ..branches.attention import SelfAttention
from ..branches.mlp import Mlp
from ..errors import check
from ..norms import NORMS, NormFactory, norm_factory
from ..shortcuts import ActivationHistory, ShortcutFactory, ShortcutSpec, Site, as_factory
from . import BLOCKS
from .residual import Residual, norm_slots

TOKEN_NORMS = ("layernorm", "rmsnorm")


def token_norm(norm_layer: str | NormFactory, bias: bool = True) -> NormFactory:
    """A norm factory for ``[..., D]`` tokens: a registry name (``layernorm``/``rmsnorm``) or a factory.

    ``bias=False`` drops LayerNorm's additive bias too, as nanoGPT's ``bias`` does ("bias in Linears and
    LayerNorms"); a factory is used as given.
    """
    if callable(norm_layer):
        return norm_layer
    valid = ", ".join(TOKEN_NORMS)
    check(norm_layer in TOKEN_NORMS, "norm_layer", f"{norm_layer!r} does not normalise tokens; valid: {valid}")
    if not bias and "bias" in NORMS.options(norm_layer):
        return norm_factory(norm_layer, bias=False)
    return norm_factory(norm_layer)


@BLOCKS.register("transformer")
class TransformerBlock(nn.Module):
    """``x = R_attn(x); x = R_mlp(x)`` with ``R(x) = post(shortcut(branch_norm(F(pre(x))), x))``.

    With ``norm="post_ln"`` and ``shortcut="identity"`` this is the block of Vaswani et al. 2017
    (``nn.TransformerEncoderLayer(norm_first=False)``); with ``pre_ln`` it is Xiong et al. 2020
    (``norm_first=True``, GPT-2). Sub-layer ``i`` of block ``index`` sits at network position
    ``2*index + i`` of ``2*total`` (decayed-identity schedules count sub-layers, not blocks).
    """

    def __init__(
        self,
        dim: int,
        heads: int,
        *,
        mlp_ratio: float = 4.0,
        norm: str = "pre_ln",
        norm_layer: str | NormFactory = "layernorm",
        shortcut: ShortcutSpec | ShortcutFactory = "identity",
        causal: bool = False,
        dropout: float = 0.0,
        bias: bool = True,
        index: int = 0,
        total: int = 1,
        history: ActivationHistory | None = None,
        zero_init_last: bool = False,
    ) -> None:
        super().__init__()
        check(0 <= index < total, "index", f"{index} outside the network's {total} blocks; valid: 0..{total - 1}")
        make_shortcut, make_norm = as_factory(shortcut), token_norm(norm_layer, bias)

        def sublayer(branch: nn.Module, i: int) -> Residual:
            rule = make_shortcut(Site(dim, "token", 2 * index + i, 2 * total, history))
            required = type(rule).requires_norm
            name = type(rule).__name__
            check(required in (None, norm), "norm", f"{norm!r} does not suit shortcut {name}; valid: {required}")
            pre, mid, post = norm_slots(norm, make_norm, dim)
            return Residual(branch, rule, pre_norm=pre, branch_norm=mid, post_norm=post)

        attn = SelfAttention(dim, heads, causal=causal, bias=bias, dropout=dropout, zero_init_last=zero_init_last)
        mlp = Mlp(dim, int(dim * mlp_ratio), bias=bias, dropout=dropout, zero_init_last=zero_init_last)
        self.attn = sublayer(attn, 0)
        self.mlp = sublayer(mlp, 1)

    def forward(self, x: torch.Tensor, pad_mask: torch.Tensor | None = None) -> torch.Tensor:
        x = self.attn(x, pad_mask=pad_mask)
        return self.mlp(x)
