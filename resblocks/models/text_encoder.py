"""Text classifier on a bidirectional Transformer encoder (Vaswani et al. 2017; BERT-style pooling)."""

from __future__ import annotations

import torch
from torch import nn

from ..errors import check
from ..norms import NormFactory
from ..shortcuts import ShortcutFactory, ShortcutSpec
from . import MODELS
from ._transformer import INIT_STD, TokenEmbedding, TransformerStack, init_transformer_

POOLS = ("mean", "cls")


@MODELS.register("transformer_classifier")
class TransformerClassifier(nn.Module):
    """``head(pool(stack(wte(ids) + wpe(pos), pad_mask)))``, padded keys hidden from attention.

    ``pool="mean"`` averages the non-padded tokens; ``pool="cls"`` prepends a learned class token
    (BERT's [CLS]) and reads it out. Post-LN by default, as the original encoder.

    Args:
        vocab_size: number of token ids; num_classes: classes of the head.
        max_len: longest input (learned positions); pad_id: the padding id (masked keys), ``None``: no padding.
        depth: number of blocks; dim: width; heads: attention heads; mlp_ratio: MLP width over ``dim``.
        dropout: embedding, attention and residual dropout; bias: biases in Linears and LayerNorms.
        attn_dropout: attention-probability dropout alone; ``None``: ``dropout`` (as in
            :class:`~resblocks.blocks.transformer.TransformerBlock`; 0 keeps a CPU's fused attention kernel).
        pool: ``mean`` over non-padded tokens or ``cls`` (a learned class token).
        norm, norm_layer, shortcut, zero_init_last, drop_path_rate, layer_scale_init: the residual design of
            every sub-layer, as in :class:`~resblocks.blocks.transformer.TransformerBlock`.
    """

    def __init__(
        self,
        *,
        vocab_size: int,
        num_classes: int,
        max_len: int = 256,
        pad_id: int | None = 0,
        depth: int = 4,
        dim: int = 128,
        heads: int = 4,
        mlp_ratio: float = 4.0,
        dropout: float = 0.1,
        attn_dropout: float | None = None,
        bias: bool = True,
        pool: str = "mean",
        norm: str = "post_ln",
        norm_layer: str | NormFactory = "layernorm",
        shortcut: ShortcutSpec | ShortcutFactory = "identity",
        zero_init_last: bool = False,
        drop_path_rate: float = 0.0,
        layer_scale_init: float | None = None,
    ) -> None:
        super().__init__()
        check(pool in POOLS, "pool", f"unknown {pool!r}; valid: {', '.join(POOLS)}")
        check(pad_id is None or 0 <= pad_id < vocab_size, "pad_id", f"{pad_id}; valid: None or 0..{vocab_size - 1}")
        self.pad_id, self.pool = pad_id, pool
        self.embed = TokenEmbedding(vocab_size, max_len, dim, dropout)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim)) if pool == "cls" else None
        self.stack = TransformerStack.from_options(locals(), causal=False)
        self.head = nn.Linear(dim, num_classes)
        init_transformer_(self, depth, rules=False)
        self._init_cls()

    def init_weights(self) -> None:
        """The library's whole init again (nanoGPT's, every residual's own: rules, modifiers; the class token)."""
        init_transformer_(self, self.stack.depth)
        self._init_cls()

    @torch.no_grad()
    def _init_cls(self) -> None:
        if self.cls_token is not None:
            nn.init.normal_(self.cls_token, std=INIT_STD)

    def no_weight_decay(self) -> set[str]:
        """The class token stays out of weight decay (timm's convention); embeddings decay as in nanoGPT."""
        return {"cls_token"} if self.cls_token is not None else set()

    def forward_features(self, ids: torch.Tensor, pad_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Pooled features ``[B, dim]``. ``pad_mask`` ``[B, T]`` bool, True = padding; default ``ids == pad_id``."""
        if pad_mask is None and self.pad_id is not None:
            pad_mask = ids == self.pad_id
        x = self.embed(ids)
        if self.cls_token is not None:
            x = torch.cat((self.cls_token.expand(x.shape[0], -1, -1), x), dim=1)
            if pad_mask is not None:
                pad_mask = torch.cat((pad_mask.new_zeros(pad_mask.shape[0], 1), pad_mask), dim=1)
        x = self.stack(x, pad_mask=pad_mask)
        if self.pool == "cls":
            return x[:, 0]
        if pad_mask is None:
            return x.mean(dim=1)
        keep = (~pad_mask).unsqueeze(-1)
        # where(), not a product: a padded position's value must not leak in, even if it is not finite.
        total = torch.where(keep, x, torch.zeros_like(x)).sum(dim=1)
        return total / keep.sum(dim=1).clamp_min(1).to(x.dtype)

    def forward(self, ids: torch.Tensor, pad_mask: torch.Tensor | None = None) -> torch.Tensor:
        """``ids`` ``[B, T]`` -> class logits ``[B, num_classes]``."""
        return self.head(self.forward_features(ids, pad_mask))
