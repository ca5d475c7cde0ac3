import math

import pytest
import torch
from torch import nn

from resblocks import ConfigError
from resblocks.branches.attention import SelfAttention

D, H, T = 16, 4, 7


def copy_from_mha(attn: SelfAttention, mha: nn.MultiheadAttention) -> None:
    with torch.no_grad():
        attn.qkv.weight.copy_(mha.in_proj_weight)
        attn.qkv.bias.copy_(mha.in_proj_bias)
        attn.proj.weight.copy_(mha.out_proj.weight)
        attn.proj.bias.copy_(mha.out_proj.bias)


def pad_mask_for(lengths: list[int], t: int = T) -> torch.Tensor:
    return torch.arange(t)[None, :] >= torch.tensor(lengths)[:, None]  # True = padding


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("padded", [False, True])
def test_matches_multihead_attention(causal: bool, padded: bool) -> None:
    torch.manual_seed(0)
    mha = nn.MultiheadAttention(D, H, batch_first=True)
    attn = SelfAttention(D, H, causal=causal)
    copy_from_mha(attn, mha)
    x = torch.randn(3, T, D)
    pad = pad_mask_for([T, 5, 2]) if padded else None
    causal_mask = torch.ones(T, T, dtype=torch.bool).triu(1) if causal else None  # True = hidden
    ref = mha(x, x, x, key_padding_mask=pad, attn_mask=causal_mask, need_weights=False)[0]
    out = attn(x, pad_mask=pad)
    assert torch.allclose(out, ref, atol=1e-5, rtol=0)


def test_equation_written_out() -> None:
    torch.manual_seed(0)
    attn = SelfAttention(D, H)
    x = torch.randn(2, T, D)
    q, k, v = attn.qkv(x).split(D, dim=-1)
    heads = lambda t: t.view(2, T, H, D // H).transpose(1, 2)  # noqa: E731
    w = torch.softmax(heads(q) @ heads(k).transpose(-1, -2) / math.sqrt(D // H), dim=-1)
    y = (w @ heads(v)).transpose(1, 2).reshape(2, T, D)
    assert torch.allclose(attn(x), attn.proj(y), atol=1e-5, rtol=0)


def test_causal_output_ignores_future_tokens() -> None:
    torch.manual_seed(0)
    attn = SelfAttention(D, H, causal=True)
    x = torch.randn(2, T, D)
    t = 3
    y = x.clone()
    y[:, t + 1 :] = torch.randn_like(y[:, t + 1 :])
    a, b = attn(x), attn(y)
    assert torch.allclose(a[:, : t + 1], b[:, : t + 1], atol=1e-6)
    assert not torch.allclose(a[:, t + 1 :], b[:, t + 1 :], atol=1e-3)  # the test can fail


@pytest.mark.parametrize("causal", [False, True])
def test_pad_mask_hides_padded_tokens(causal: bool) -> None:
    torch.manual_seed(0)
    attn = SelfAttention(D, H, causal=causal)
    pad = pad_mask_for([T, 4]).flip(-1)  # left padding: pads precede real tokens, so even causal attention sees them
    x = torch.randn(2, T, D)
    y = torch.where(pad[..., None], torch.randn_like(x), x)
    a, b = attn(x, pad_mask=pad), attn(y, pad_mask=pad)
    assert torch.allclose(a[~pad], b[~pad], atol=1e-6)
    # Without the mask the padded tokens do leak into the real ones.
    assert not torch.allclose(attn(x)[~pad], attn(y)[~pad], atol=1e-3)


def test_dim_not_divisible_by_heads() -> None:
    with pytest.raises(ConfigError, match=r"^heads: dim 10 is not divisible by heads 4; valid: "):
        SelfAttention(10, 4)


def test_dropout_only_in_training() -> None:
    torch.manual_seed(0)
    attn = SelfAttention(D, H, dropout=0.5)
    x = torch.randn(2, T, D)
    attn.eval()
    assert torch.equal(attn(x), attn(x))
    attn.train()
    assert not torch.allclose(attn(x), attn(x))


def test_deepnorm_init_scales_value_and_output_only() -> None:
    torch.manual_seed(0)
    attn = SelfAttention(D, H)
    qkv, proj = attn.qkv.weight.clone(), attn.proj.weight.clone()
    attn.deepnorm_init_(0.25)
    assert torch.equal(attn.qkv.weight[: 2 * D], qkv[: 2 * D])  # q, k untouched
    assert torch.allclose(attn.qkv.weight[2 * D :], 0.25 * qkv[2 * D :])
    assert torch.allclose(attn.proj.weight, 0.25 * proj)


def test_zero_init_last_gives_zero_output() -> None:
    attn = SelfAttention(D, H, zero_init_last=True)
    out = attn(torch.randn(2, T, D))
    assert torch.equal(out, torch.zeros_like(out))
    assert attn.output_layer() is attn.proj


def test_gradients_flow_through_masked_causal_attention() -> None:
    attn = SelfAttention(D, H, causal=True)
    x = torch.randn(2, T, D, requires_grad=True)
    attn(x, pad_mask=pad_mask_for([T, 3])).sum().backward()
    assert torch.isfinite(x.grad).all() and attn.qkv.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("causal", [False, True])
def test_cpu_autocast_runs_the_attention_in_fp32(causal: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    """Under CPU bf16 autocast SDPA gets fp32 q, k, v (its bf16 backward is slow on a CPU); the block stays bf16."""
    import resblocks.branches.attention as attention

    seen: list[torch.dtype] = []
    sdpa = attention.F.scaled_dot_product_attention

    def recording(q: torch.Tensor, *args: object, **kwargs: object) -> torch.Tensor:
        seen.append(q.dtype)
        return sdpa(q, *args, **kwargs)

    monkeypatch.setattr(attention.F, "scaled_dot_product_attention", recording)
    torch.manual_seed(0)
    attn = SelfAttention(D, H, causal=causal)
    x = torch.randn(2, T, D, requires_grad=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = attn(x)
        q, k, v = attn.qkv(x).view(2, T, 3, H, D // H).permute(2, 0, 3, 1, 4).unbind(0)  # autocast's bf16 qkv
    ref = sdpa(q.float(), k.float(), v.float(), is_causal=causal)  # fp32 attention of the bf16 projections
    ref = attn.proj(ref.to(torch.bfloat16).transpose(1, 2).reshape(2, T, D).float())
    assert seen == [torch.float32]
    assert out.dtype == torch.bfloat16
    assert torch.allclose(out.float(), ref, atol=2e-2, rtol=0)
    out.float().sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    seen.clear()
    attn(x)  # fp32 outside autocast: nothing changes
    assert seen == [torch.float32]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        attn(x.bfloat16())  # a bf16 input: still fp32 attention
    assert seen == [torch.float32, torch.float32]
