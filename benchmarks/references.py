"""A minimal hand-written Transformer block in nanoGPT's style: the speed reference for ``resblocks``' block.

Karpathy's nanoGPT ``model.py`` (``Block``, ``CausalSelfAttention``, ``MLP``): a fused ``c_attn``
projection, ``F.scaled_dot_product_attention``, GELU MLP of 4x width, Pre-LN. ``post_ln=True``
moves the norms after each residual sum (the Post-LN block of Vaswani et al. 2017) for the
``post_ln`` comparison. Nothing else: no dropout, no masks, no registries.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class NanoGPTBlock(nn.Module):
    def __init__(self, dim: int, heads: int, *, causal: bool = True, post_ln: bool = False) -> None:
        super().__init__()
        self.heads, self.causal, self.post_ln = heads, causal, post_ln
        self.ln_1 = nn.LayerNorm(dim)
        self.c_attn = nn.Linear(dim, 3 * dim)
        self.attn_proj = nn.Linear(dim, dim)
        self.ln_2 = nn.LayerNorm(dim)
        self.c_fc = nn.Linear(dim, 4 * dim)
        self.gelu = nn.GELU()
        self.mlp_proj = nn.Linear(4 * dim, dim)

    def attn(self, x: torch.Tensor) -> torch.Tensor:
        B, T, C = x.shape
        q, k, v = self.c_attn(x).split(C, dim=2)
        q, k, v = (t.view(B, T, self.heads, C // self.heads).transpose(1, 2) for t in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=self.causal)
        return self.attn_proj(y.transpose(1, 2).contiguous().view(B, T, C))

    def mlp(self, x: torch.Tensor) -> torch.Tensor:
        return self.mlp_proj(self.gelu(self.c_fc(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.post_ln:
            x = self.ln_1(x + self.attn(x))
            return self.ln_2(x + self.mlp(x))
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


__all__ = ["NanoGPTBlock"]
