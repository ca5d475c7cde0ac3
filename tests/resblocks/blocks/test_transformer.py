import pytest
import torch
from torch import nn

from resblocks import BLOCKS, SHORTCUTS, ConfigError, build_block
from resblocks.blocks.transformer import TransformerBlock

D, H, FF, T = 16, 4, 32, 6


def reference_and_block(norm_first: bool) -> tuple[nn.TransformerEncoderLayer, TransformerBlock]:
    torch.manual_seed(0)
    ref = nn.TransformerEncoderLayer(
        D, H, FF, dropout=0.0, activation="gelu", batch_first=True, norm_first=norm_first
    )
    block = TransformerBlock(D, H, mlp_ratio=FF / D, norm="pre_ln" if norm_first else "post_ln", shortcut="identity")
    attn, mlp = block.attn, block.mlp
    norm1, norm2 = (attn.pre_norm, mlp.pre_norm) if norm_first else (attn.post_norm, mlp.post_norm)
    pairs = [
        (attn.branch.qkv.weight, ref.self_attn.in_proj_weight),
        (attn.branch.qkv.bias, ref.self_attn.in_proj_bias),
        (attn.branch.proj.weight, ref.self_attn.out_proj.weight),
        (attn.branch.proj.bias, ref.self_attn.out_proj.bias),
        (mlp.branch.fc1.weight, ref.linear1.weight),
        (mlp.branch.fc1.bias, ref.linear1.bias),
        (mlp.branch.fc2.weight, ref.linear2.weight),
        (mlp.branch.fc2.bias, ref.linear2.bias),
        (norm1.weight, ref.norm1.weight),
        (norm1.bias, ref.norm1.bias),
        (norm2.weight, ref.norm2.weight),
        (norm2.bias, ref.norm2.bias),
    ]
    with torch.no_grad():
        for mine, theirs in pairs:
            if theirs.dim() == 1:  # non-trivial biases and norm affines, so a swapped norm would show
                theirs.add_(0.1 * torch.randn_like(theirs))
            mine.copy_(theirs)
    return ref, block


@pytest.mark.parametrize("norm_first", [False, True], ids=["post_ln", "pre_ln"])
@pytest.mark.parametrize("padded", [False, True], ids=["nomask", "padmask"])
@pytest.mark.parametrize("mode", ["train", "eval", "eval_nograd"])
def test_matches_transformer_encoder_layer(norm_first: bool, padded: bool, mode: str) -> None:
    ref, block = reference_and_block(norm_first)
    ref.train(mode == "train"), block.train(mode == "train")
    x = torch.randn(3, T, D)
    pad = (torch.arange(T)[None] >= torch.tensor([T, 4, 1])[:, None]) if padded else None
    # eval under no_grad is where nn.TransformerEncoderLayer takes its fused fast path.
    with torch.set_grad_enabled(mode != "eval_nograd"):
        want = ref(x, src_key_padding_mask=pad)
        got = block(x, pad_mask=pad)
    assert (got - want).abs().max() <= 1e-5


def test_peri_ln_equation() -> None:
    torch.manual_seed(0)
    block = TransformerBlock(D, H, norm="peri_ln")
    x = torch.randn(2, T, D)
    h = x
    for sub in (block.attn, block.mlp):
        assert isinstance(sub.pre_norm, nn.LayerNorm) and isinstance(sub.branch_norm, nn.LayerNorm)
        with torch.no_grad():
            sub.branch_norm.weight.normal_()  # distinguishable from the pre-norm
        h = h + sub.branch_norm(sub.branch(sub.pre_norm(h)))
    assert torch.allclose(block(x), h, atol=1e-6)


def test_res_post_ln_equation() -> None:
    torch.manual_seed(0)
    block = TransformerBlock(D, H, norm="res_post_ln")
    x = torch.randn(2, T, D)
    h = x
    for sub in (block.attn, block.mlp):
        assert isinstance(sub.pre_norm, nn.Identity) and isinstance(sub.post_norm, nn.Identity)
        h = h + sub.branch_norm(sub.branch(h))
    assert torch.allclose(block(x), h, atol=1e-6)


def test_norm_none_has_no_norms() -> None:
    block = TransformerBlock(D, H, norm="none")
    assert not any(isinstance(m, (nn.LayerNorm, nn.RMSNorm)) for m in block.modules())
    x = torch.randn(2, T, D)
    h = x + block.attn.branch(x)
    assert torch.allclose(block(x), h + block.mlp.branch(h), atol=1e-6)


def test_rmsnorm_and_bad_norm_layer() -> None:
    block = TransformerBlock(D, H, norm_layer="rmsnorm")
    assert isinstance(block.attn.pre_norm, nn.RMSNorm) and isinstance(block.mlp.pre_norm, nn.RMSNorm)
    with pytest.raises(ConfigError, match=r"^norm_layer: 'batchnorm' .*; valid: layernorm, rmsnorm$"):
        TransformerBlock(D, H, norm_layer="batchnorm")
    with pytest.raises(ConfigError, match=r"^norm: unknown placement 'preln'"):
        TransformerBlock(D, H, norm="preln")


def test_causal_block_ignores_future_tokens() -> None:
    torch.manual_seed(0)
    block = TransformerBlock(D, H, causal=True)
    x = torch.randn(2, T, D)
    y = x.clone()
    y[:, 4:] = torch.randn_like(y[:, 4:])
    a, b = block(x), block(y)
    assert torch.allclose(a[:, :4], b[:, :4], atol=1e-6) and not torch.allclose(a[:, 4:], b[:, 4:], atol=1e-3)


def test_sites_shortcuts_and_hiddens() -> None:
    block = TransformerBlock(D, H, index=2, total=5, shortcut="laurel_pa")
    sites = [block.attn.shortcut.site, block.mlp.shortcut.site]
    assert [(s.index, s.total, s.layout, s.dim) for s in sites] == [(4, 10, "token", D), (5, 10, "token", D)]
    assert [(s.block, s.blocks) for s in sites] == [(2, 5), (2, 5)]
    hiddens: dict = {}
    x = torch.randn(2, T, D)
    y = block(x, hiddens=hiddens)
    assert sorted(hiddens) == [4, 5] and hiddens[4] is x  # each sub-layer records its shortcut input
    torch.testing.assert_close(block(x, hiddens=dict(hiddens)), y)  # a recomputation reads the same entries
    assert block.attn.shortcut is not block.mlp.shortcut
    with pytest.raises(ConfigError, match=r"^index: 5 outside"):
        TransformerBlock(D, H, index=5, total=5)


def test_registered_and_built_by_name_with_options() -> None:
    assert "transformer" in BLOCKS
    block = build_block("transformer", D, H, shortcut={"name": "identity"}, mlp_ratio=2.0)
    assert block.mlp.branch.fc1.out_features == 2 * D
    with pytest.raises(ConfigError, match=r"^block\.mlp_ration: unknown option"):
        build_block("transformer", D, H, mlp_ration=2.0)


@pytest.mark.skipif("deepnorm" not in SHORTCUTS, reason="deepnorm shortcut not registered")
def test_deepnorm_requires_post_ln() -> None:
    with pytest.raises(ConfigError, match=r"^norm: 'pre_ln' .*valid: post_ln$"):
        TransformerBlock(D, H, norm="pre_ln", shortcut="deepnorm")
    torch.manual_seed(0)
    plain = TransformerBlock(D, H, norm="post_ln")
    torch.manual_seed(0)
    deep = TransformerBlock(D, H, norm="post_ln", shortcut="deepnorm")
    beta = deep.attn.shortcut.beta
    assert beta < 1
    assert torch.equal(deep.attn.branch.qkv.weight[: 2 * D], plain.attn.branch.qkv.weight[: 2 * D])
    assert torch.allclose(deep.attn.branch.qkv.weight[2 * D :], beta * plain.attn.branch.qkv.weight[2 * D :])
    assert torch.allclose(deep.mlp.branch.fc2.weight, beta * plain.mlp.branch.fc2.weight)


def test_zero_init_last_block_is_identity_at_init() -> None:
    block = TransformerBlock(D, H, zero_init_last=True)
    x = torch.randn(2, T, D)
    assert torch.allclose(block(x), x)


def test_attn_dropout_alone() -> None:
    # attn_dropout=None follows dropout; a number sets the attention probabilities' dropout alone.
    both = TransformerBlock(16, 4, dropout=0.3)
    assert both.attn.branch.dropout == 0.3 and both.attn.branch.proj_drop.p == 0.3
    split = TransformerBlock(16, 4, dropout=0.3, attn_dropout=0.0)
    assert split.attn.branch.dropout == 0.0 and split.attn.branch.proj_drop.p == 0.3
    # Behaviour in training mode: only attention dropout on -> stochastic; all off -> deterministic.
    x = torch.randn(2, 5, 16)
    only_attn = TransformerBlock(16, 4, dropout=0.0, attn_dropout=0.5).train()
    assert not torch.equal(only_attn(x), only_attn(x))
    off = TransformerBlock(16, 4, dropout=0.5, attn_dropout=0.0).train()
    for m in off.modules():
        if isinstance(m, nn.Dropout):
            m.p = 0.0  # the output dropouts off too: what is left is the attention's
    assert torch.equal(off(x), off(x))
    with pytest.raises(ConfigError, match=r"attn_dropout"):
        TransformerBlock(16, 4, attn_dropout=1.5)


def test_models_pass_attn_dropout_to_every_block() -> None:
    from resblocks.models.text_encoder import TransformerClassifier

    net = TransformerClassifier(vocab_size=10, num_classes=3, max_len=8, depth=2, dim=16, heads=4, dropout=0.2, attn_dropout=0.0)
    attns = [b.attn.branch for b in net.stack.blocks]
    assert [a.dropout for a in attns] == [0.0, 0.0] and [a.proj_drop.p for a in attns] == [0.2, 0.2]
