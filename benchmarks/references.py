"""nanoGPT written out by hand: the references ``resblocks``' Transformer block and GPT are compared with.

:class:`NanoGPTBlock` is Karpathy's nanoGPT ``model.py`` ``Block`` (``CausalSelfAttention``, ``MLP``): a
fused ``c_attn`` projection, ``F.scaled_dot_product_attention``, GELU MLP of 4x width, Pre-LN; the speed
reference of the ``blocks`` group. ``post_ln=True`` moves the norms after each residual sum (the Post-LN
block of Vaswani et al. 2017) for the ``post_ln`` comparison. :class:`NanoGPT` is nanoGPT's ``GPT``
(learned positions, tied head, its explicit init), the quality reference of ``benchmarks.nanogpt_shakespeare``.
Nothing else: no dropout, no masks, no registries.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class NanoGPTBlock(nn.Module):
    def __init__(self, dim: int, heads: int, *, causal: bool = True, post_ln: bool = False, bias: bool = True) -> None:
        super().__init__()
        self.heads, self.causal, self.post_ln = heads, causal, post_ln
        self.ln_1 = nn.LayerNorm(dim, bias=bias)
        self.c_attn = nn.Linear(dim, 3 * dim, bias=bias)
        self.attn_proj = nn.Linear(dim, dim, bias=bias)
        self.ln_2 = nn.LayerNorm(dim, bias=bias)
        self.c_fc = nn.Linear(dim, 4 * dim, bias=bias)
        self.gelu = nn.GELU()
        self.mlp_proj = nn.Linear(4 * dim, dim, bias=bias)

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


class NanoGPT(nn.Module):
    """nanoGPT's ``GPT`` (``bias=False`` by default, as its ``train.py``): ``lm_head(ln_f(blocks(wte + wpe)))``.

    Init as nanoGPT's ``_init_weights``: every Linear and Embedding N(0, 0.02), biases zero, then the
    residual output projections N(0, 0.02 / sqrt(2 * n_layer)); ``lm_head`` is tied to ``wte``.
    """

    def __init__(self, vocab_size: int, block_size: int, n_layer: int, n_head: int, n_embd: int, bias: bool = False):
        super().__init__()
        self.wte = nn.Embedding(vocab_size, n_embd)
        self.wpe = nn.Embedding(block_size, n_embd)
        self.h = nn.ModuleList(NanoGPTBlock(n_embd, n_head, bias=bias) for _ in range(n_layer))
        self.ln_f = nn.LayerNorm(n_embd, bias=bias)
        self.lm_head = nn.Linear(n_embd, vocab_size, bias=False)
        self.wte.weight = self.lm_head.weight
        self.apply(self._init_weights)
        for name, p in self.named_parameters():
            if name.endswith(("attn_proj.weight", "mlp_proj.weight")):  # nanoGPT's c_proj.weight
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * n_layer))

    @staticmethod
    def _init_weights(m: nn.Module) -> None:
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, mean=0.0, std=0.02)
        if isinstance(m, nn.Linear) and m.bias is not None:
            nn.init.zeros_(m.bias)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        x = self.wte(idx) + self.wpe(torch.arange(idx.shape[1], device=idx.device))
        for block in self.h:
            x = block(x)
        return self.lm_head(self.ln_f(x))


__all__ = ["NanoGPT", "NanoGPTBlock"]
