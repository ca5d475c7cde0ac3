"""Multi-head self-attention branch (Vaswani et al. 2017, arXiv 1706.03762, eq. 1 and §3.2.2)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import check
from ._output import zero_output_


# Reduced-precision dtypes whose CPU attention runs in fp32 (see SelfAttention's docstring).
_UPCAST_ON_CPU = (torch.bfloat16, torch.float16)


@torch.fx.wrap  # one leaf for FX tracing (feature extractors): the dtype/device branch cannot be traced
def attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None, dropout_p: float, is_causal: bool
) -> torch.Tensor:
    """``F.scaled_dot_product_attention``, in fp32 for reduced-precision inputs on a CPU (cast back after)."""
    if q.device.type == "cpu" and q.dtype in _UPCAST_ON_CPU:
        with torch.autocast("cpu", enabled=False):  # CPU autocast would cast SDPA's inputs back down
            y = F.scaled_dot_product_attention(
                q.float(), k.float(), v.float(), attn_mask=mask, dropout_p=dropout_p, is_causal=is_causal
            )
        return y.to(q.dtype)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout_p, is_causal=is_causal)


class SelfAttention(nn.Module):
    """``proj(softmax(q k^T / sqrt(d_head) + mask) v)`` with a fused ``qkv`` projection.

    The fused ``qkv`` weight is laid out like ``nn.MultiheadAttention.in_proj_weight`` (q, k, v
    stacked along the output dim), so weights copy over one to one. Attention runs through
    ``F.scaled_dot_product_attention`` (flash / memory-efficient kernels where available).

    ``pad_mask`` (forward kwarg, ``[B, T]`` bool, True = padding) hides padded *keys*; it is the
    same convention as ``nn.TransformerEncoderLayer``'s ``src_key_padding_mask``.

    ``dropout`` acts on the output projection and, unless ``attn_dropout`` is given, on the attention
    probabilities too. Any attention dropout sends a CPU's SDPA to its unfused math kernel (a 128-wide block on
    256 tokens trains 1.5x slower in fp32, docs/benchmarks.md), so ``attn_dropout=0`` keeps the fused kernel and
    still drops outputs.

    On a CPU, attention in bf16/fp16 (autocast's dtype for the ``qkv`` output) runs in fp32 and is cast back:
    torch's CPU flash-attention backward is several times slower in bf16 than in fp32 (12x4x64x32 causal, one
    thread, torch 2.14.1 on an AMD Zen 4: forward + backward 7.2 ms in bf16, 1.9 ms with the casts around fp32),
    which cancelled most of what bf16 matmuls gain in a small GPT (``docs/benchmarks.md``). Where a CPU's bf16
    kernel is as fast, the casts cost little (0.11 ms of the 1.9 here), and an fp32 softmax is the more exact.
    GPUs keep the input dtype.
    """

    def __init__(
        self,
        dim: int,
        heads: int,
        *,
        causal: bool = False,
        bias: bool = True,
        dropout: float = 0.0,
        attn_dropout: float | None = None,
        zero_init_last: bool = False,
    ) -> None:
        super().__init__()
        valid = heads >= 1 and dim % heads == 0
        check(valid, "heads", f"dim {dim} is not divisible by heads {heads}; valid: a divisor of dim")
        self.dim, self.heads, self.causal = dim, heads, causal
        valid = attn_dropout is None or 0.0 <= attn_dropout <= 1.0
        check(valid, "attn_dropout", f"{attn_dropout}; valid: null (= dropout) or 0..1")
        self.dropout = dropout if attn_dropout is None else attn_dropout  # the attention probabilities'
        self.zero_init_last = zero_init_last  # read by Residual to refuse a second zero gate
        self.qkv = nn.Linear(dim, 3 * dim, bias=bias)
        self.proj = nn.Linear(dim, dim, bias=bias)
        self.proj_drop = nn.Dropout(dropout)
        if zero_init_last:
            zero_output_(self)

    def output_layer(self) -> nn.Linear:
        """The residual output projection (GPT-2 scaled init, ``zero_init_last``)."""
        return self.proj

    def forward(self, x: torch.Tensor, pad_mask: torch.Tensor | None = None) -> torch.Tensor:
        B, T, C = x.shape
        q, k, v = self.qkv(x).view(B, T, 3, self.heads, C // self.heads).permute(2, 0, 3, 1, 4).unbind(0)
        mask = None
        if pad_mask is not None:
            mask = ~pad_mask[:, None, None, :]  # [B, 1, 1, T]: True = this key takes part
            if self.causal:  # SDPA refuses is_causal together with a mask: fold the triangle in
                mask = mask & torch.ones(T, T, dtype=torch.bool, device=x.device).tril()
        y = attention(q, k, v, mask, self.dropout if self.training else 0.0, self.causal and mask is None)
        return self.proj_drop(self.proj(y.transpose(1, 2).reshape(B, T, C)))

    @torch.no_grad()
    def deepnorm_init_(self, beta: float) -> None:
        """DeepNet (Wang et al. 2022, arXiv 2203.00555, Alg. 1): scale v and output weights by beta; q, k untouched."""
        self.qkv.weight[2 * self.dim :].mul_(beta)
        self.proj.weight.mul_(beta)

    def extra_repr(self) -> str:
        return f"dim={self.dim}, heads={self.heads}, causal={self.causal}, dropout={self.dropout}"

