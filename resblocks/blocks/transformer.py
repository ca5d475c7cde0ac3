"""The Transformer block: an attention and an MLP residual sub-layer, each with its own shortcut and norms."""

from __future__ import annotations

import torch
from torch import nn

from ..branches.attention import SelfAttention
from ..branches.mlp import Mlp
from ..errors import check
from ..norms import NORMS, NormFactory, norm_factory
from ..modifiers import branch_output
from ..shortcuts import Hiddens, ShortcutFactory, ShortcutSpec, Site, as_factory
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
    """``x = R_attn(x); x = R_mlp(x)`` with ``R(x) = post(shortcut(branch_out(branch_norm(F(pre(x)))), x))``.

    With ``norm="post_ln"`` and ``shortcut="identity"`` this is the block of Vaswani et al. 2017
    (``nn.TransformerEncoderLayer(norm_first=False)``); with ``pre_ln`` it is Xiong et al. 2020
    (``norm_first=True``, GPT-2). Sub-layer ``i`` of block ``index`` sits at network position
    ``2*index + i`` of ``2*total`` (decayed-identity schedules count sub-layers, not blocks).

    Args:
        dim: token width D.
        heads: attention heads (``dim`` divisible by it).
        mlp_ratio: MLP hidden width over ``dim``.
        norm: norm placement, one of :data:`~resblocks.blocks.residual.NORM_PLACEMENTS`.
        norm_layer: ``layernorm``/``rmsnorm`` or a norm factory ``dim -> nn.Module``.
        shortcut: the rule of both sub-layers: a registry name, ``{"name": ..., **options}`` or a factory.
        causal: causal self-attention (decoders).
        dropout: attention-probability and output dropout.
        attn_dropout: attention-probability dropout alone; ``None``: ``dropout``
            (:class:`~resblocks.branches.attention.SelfAttention`: 0 keeps a CPU's fused attention kernel).
        bias: biases in Linears and LayerNorms (nanoGPT's ``bias``).
        index: this block's position in the network, 0-based.
        total: number of blocks in the network.
        zero_init_last: zero the attention and MLP output projections (F = 0 at init).
        drop_path_rate: stochastic depth of the network's last block; this block's is
            ``linspace(0, drop_path_rate, total)[index]`` (:mod:`resblocks.modifiers`).
        layer_scale_init: LayerScale on both branch outputs with this init; ``None`` is off.
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
        attn_dropout: float | None = None,
        bias: bool = True,
        index: int = 0,
        total: int = 1,
        zero_init_last: bool = False,
        drop_path_rate: float = 0.0,
        layer_scale_init: float | None = None,
    ) -> None:
        super().__init__()
        check(0 <= index < total, "index", f"{index} outside the network's {total} blocks; valid: 0..{total - 1}")
        make_shortcut, make_norm = as_factory(shortcut), token_norm(norm_layer, bias)

        def sublayer(branch: nn.Module, i: int) -> Residual:
            site = Site(dim, "token", 2 * index + i, 2 * total, per_block=2)
            rule = make_shortcut(site)
            pre, mid, post = norm_slots(norm, make_norm, dim)
            out = branch_output(site, drop_path_rate=drop_path_rate, layer_scale_init=layer_scale_init)
            return Residual(branch, rule, pre_norm=pre, branch_norm=mid, post_norm=post, branch_out=out, placement=norm)

        attn = SelfAttention(
            dim, heads, causal=causal, bias=bias, dropout=dropout, attn_dropout=attn_dropout, zero_init_last=zero_init_last
        )
        mlp = Mlp(dim, int(dim * mlp_ratio), bias=bias, dropout=dropout, zero_init_last=zero_init_last)
        self.attn = sublayer(attn, 0)
        self.mlp = sublayer(mlp, 1)

    def forward(
        self, x: torch.Tensor, pad_mask: torch.Tensor | None = None, *, hiddens: Hiddens | None = None
    ) -> torch.Tensor:
        """``x`` ``[B, T, D]``; ``pad_mask`` ``[B, T]`` (True = padding); ``hiddens``: see :class:`Residual`."""
        x = self.attn(x, hiddens=hiddens, pad_mask=pad_mask)
        return self.mlp(x, hiddens=hiddens)
