"""Decoder-only language model: GPT-2 (Radford et al. 2019) in nanoGPT's form, with pluggable residuals."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import check
from ..norms import NormFactory
from ..shortcuts import ShortcutFactory, ShortcutSpec
from . import MODELS
from ._transformer import TokenEmbedding, TransformerStack, init_transformer_
from ._variants import register_variant


@MODELS.register("gpt")
class GPT(nn.Module):
    """``logits = lm_head(stack(wte(idx) + wpe(pos)))`` with causal blocks and ``lm_head`` tied to ``wte``.

    Init as nanoGPT: N(0, 0.02), residual output projections N(0, 0.02/sqrt(2*depth)) (GPT-2 §2.3);
    weight tying as Press & Wolf 2017 (arXiv 1608.05859).

    Args:
        vocab_size: number of token ids.
        block_size: context length (learned positions).
        depth: number of blocks; dim: width; heads: attention heads; mlp_ratio: MLP width over ``dim``.
        dropout: embedding, attention and residual dropout (nanoGPT's ``dropout``).
        attn_dropout: attention-probability dropout alone; ``None``: ``dropout`` (as in
            :class:`~resblocks.blocks.transformer.TransformerBlock`; 0 keeps a CPU's fused attention kernel).
        bias: biases in Linears and LayerNorms (nanoGPT's ``bias``).
        norm, norm_layer, shortcut, zero_init_last, drop_path_rate, layer_scale_init: the residual design of
            every sub-layer, as in :class:`~resblocks.blocks.transformer.TransformerBlock`.
    """

    def __init__(
        self,
        *,
        vocab_size: int,
        block_size: int,
        depth: int = 6,
        dim: int = 384,
        heads: int = 6,
        mlp_ratio: float = 4.0,
        dropout: float = 0.0,
        attn_dropout: float | None = None,
        bias: bool = True,
        norm: str = "pre_ln",
        norm_layer: str | NormFactory = "layernorm",
        shortcut: ShortcutSpec | ShortcutFactory = "identity",
        zero_init_last: bool = False,
        drop_path_rate: float = 0.0,
        layer_scale_init: float | None = None,
    ) -> None:
        super().__init__()
        self.block_size = block_size
        self.embed = TokenEmbedding(vocab_size, block_size, dim, dropout)
        self.stack = TransformerStack.from_options(locals(), causal=True)
        self.lm_head = nn.Linear(dim, vocab_size, bias=False)
        self.lm_head.weight = self.embed.wte.weight  # tied: one tensor, initialised once below
        init_transformer_(self, depth, rules=False)

    def init_weights(self) -> None:
        """The library's whole init again (nanoGPT's, then every residual's own: rules, modifiers)."""
        init_transformer_(self, self.stack.depth)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        """``idx`` ``[B, T]`` token ids (``T <= block_size``) -> logits ``[B, T, vocab_size]``."""
        return self.lm_head(self.stack(self.embed(idx)))

    def num_params(self, non_embedding: bool = True) -> int:
        """Parameter count; as nanoGPT, ``non_embedding`` leaves out the position embeddings
        (token embeddings stay in: they are the tied ``lm_head`` weights)."""
        n = sum(p.numel() for p in self.parameters())
        return n - self.embed.wpe.weight.numel() if non_embedding else n

    @torch.no_grad()
    def generate(
        self,
        idx: torch.Tensor,
        max_new_tokens: int,
        temperature: float = 1.0,
        top_k: int | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Sample ``max_new_tokens`` tokens after ``idx`` ``[B, T]`` (nanoGPT ``generate``); returns ``[B, T + new]``.

        The context is cropped to the last ``block_size`` tokens. Call ``model.eval()`` first to
        switch dropout off. ``top_k=1`` is greedy (argmax) decoding.
        """
        check(temperature > 0, "temperature", f"{temperature}; valid: > 0")
        check(top_k is None or top_k >= 1, "top_k", f"{top_k}; valid: None or >= 1")
        for _ in range(max_new_tokens):
            logits = self(idx[:, -self.block_size :])[:, -1, :] / temperature
            if top_k is not None:
                kth = torch.topk(logits, min(top_k, logits.size(-1))).values[:, [-1]]
                logits = logits.masked_fill(logits < kth, float("-inf"))
            probs = F.softmax(logits, dim=-1)
            idx = torch.cat((idx, torch.multinomial(probs, num_samples=1, generator=generator)), dim=1)
        return idx



register_variant(
    "gpt_nano", GPT,
    "nanoGPT's CPU Shakespeare config: 4 layers, 4 heads, 128 wide, context 64, no biases (its README: val loss ~1.88).",
    defaults=dict(depth=4, heads=4, dim=128, block_size=64, bias=False),
)
register_variant(
    "gpt_mini", GPT,
    "nanoGPT's shakespeare_char GPU config: 6 layers, 6 heads, 384 wide, context 256, dropout 0.2, no biases (~1.47).",
    defaults=dict(depth=6, heads=6, dim=384, block_size=256, dropout=0.2, bias=False),
)
