import copy
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from resblocks import MODELS, SHORTCUTS, ConfigError, build_model
from resblocks.models.gpt import GPT

V, BS = 32, 8
TINY = dict(vocab_size=V, block_size=BS, depth=2, dim=16, heads=2)


def test_forward_backward_with_every_shortcut(shortcut_case: tuple) -> None:
    name, placement = shortcut_case
    model = GPT(**TINY, shortcut=name, **({"norm": placement} if placement else {}))
    idx = torch.randint(0, V, (3, BS))
    logits = model(idx)
    assert logits.shape == (3, BS, V)
    F.cross_entropy(logits.flatten(0, 1), idx.flatten()).backward()
    assert model.embed.wte.weight.grad is not None and torch.isfinite(model.embed.wte.weight.grad).all()


def test_sites_count_sub_layers_and_blocks(assert_stack_sites) -> None:
    model = GPT(**{**TINY, "depth": 3})
    assert_stack_sites(model, 3)


def test_tied_embedding() -> None:
    model = GPT(**TINY)
    assert model.lm_head.weight is model.embed.wte.weight
    assert sum(p.numel() for p in model.parameters()) == sum(p.numel() for p in set(model.parameters()))


def test_nanogpt_init_with_scaled_residual_projections() -> None:
    torch.manual_seed(0)
    depth = 8
    model = GPT(vocab_size=V, block_size=BS, depth=depth, dim=256, heads=4)
    scaled = 0.02 / math.sqrt(2 * depth)
    for block in model.stack.blocks:
        for layer in (block.attn.branch.proj, block.mlp.branch.fc2):
            assert layer.weight.std().item() == pytest.approx(scaled, rel=0.05)
            assert torch.equal(layer.bias, torch.zeros_like(layer.bias))
        for layer in (block.attn.branch.qkv, block.mlp.branch.fc1):
            assert layer.weight.std().item() == pytest.approx(0.02, rel=0.05)
    assert model.embed.wpe.weight.std().item() == pytest.approx(0.02, rel=0.1)


@pytest.mark.parametrize("norm,final", [("pre_ln", True), ("peri_ln", True), ("res_post_ln", True), ("post_ln", False)])
def test_final_norm_iff_needed(norm: str, final: bool) -> None:
    model = GPT(**TINY, norm=norm)
    assert isinstance(model.stack.norm, nn.LayerNorm) is final
    assert isinstance(model.stack.norm, nn.Identity) is not final
    rms = GPT(**TINY, norm=norm, norm_layer="rmsnorm")
    assert isinstance(rms.stack.norm, nn.RMSNorm) is final


def test_causal_logits_ignore_future_tokens() -> None:
    torch.manual_seed(0)
    model = GPT(**TINY)
    a = torch.randint(0, V, (2, BS))
    b = a.clone()
    b[:, 5:] = (b[:, 5:] + 1) % V
    la, lb = model(a), model(b)
    assert torch.allclose(la[:, :5], lb[:, :5], atol=1e-6) and not torch.allclose(la[:, 5:], lb[:, 5:], atol=1e-4)


def test_generate_shape_determinism_and_greedy() -> None:
    torch.manual_seed(0)
    model = GPT(**TINY).eval()
    prompt = torch.randint(0, V, (2, 5))
    n = 6  # 5 + 6 > block_size: the context is cropped
    out = model.generate(prompt, n, generator=torch.Generator().manual_seed(1))
    assert out.shape == (2, 5 + n) and torch.equal(out[:, :5], prompt)
    again = model.generate(prompt, n, generator=torch.Generator().manual_seed(1))
    assert torch.equal(out, again)
    greedy = prompt
    for _ in range(n):
        nxt = model(greedy[:, -BS:])[:, -1].argmax(-1, keepdim=True)
        greedy = torch.cat((greedy, nxt), dim=1)
    assert torch.equal(model.generate(prompt, n, top_k=1, temperature=0.7), greedy)
    with pytest.raises(ConfigError, match=r"^temperature: 0"):
        model.generate(prompt, 1, temperature=0)


def test_context_longer_than_block_size() -> None:
    with pytest.raises(ConfigError, match=r"^input: sequence length 9 exceeds the context; valid: <= 8$"):
        GPT(**TINY)(torch.zeros(1, BS + 1, dtype=torch.long))


def test_num_params_like_nanogpt() -> None:
    model = build_model("gpt_nano", vocab_size=65)
    total = sum(p.numel() for p in model.parameters())
    assert model.num_params(non_embedding=False) == total
    assert model.num_params() == total - 64 * 128  # minus the position embeddings
    assert 0.79e6 < model.num_params() < 0.81e6  # nanoGPT prints "0.80M" for its CPU config


def test_presets_and_options() -> None:
    nano = build_model("gpt_nano", vocab_size=V)
    assert (len(nano.stack.blocks), nano.embed.wte.embedding_dim, nano.block_size) == (4, 128, 64)
    assert nano.stack.blocks[0].attn.branch.heads == 4
    assert MODELS.options("gpt_mini")["dim"] == 384 and MODELS.options("gpt_mini")["depth"] == 6
    assert build_model("gpt_nano", vocab_size=V, depth=2).stack.blocks.__len__() == 2  # presets stay overridable
    with pytest.raises(ConfigError, match=r"^model\.n_layer: unknown option"):
        build_model("gpt_nano", vocab_size=V, n_layer=2)
    with pytest.raises(ConfigError, match=r"^heads: dim 16 is not divisible by heads 3"):
        GPT(**{**TINY, "heads": 3})


def test_zero_init_last_survives_model_init_and_refuses_rezero() -> None:
    model = GPT(**TINY, zero_init_last=True)
    for block in model.stack.blocks:
        assert not block.attn.branch.proj.weight.any() and not block.mlp.branch.fc2.weight.any()
    with pytest.raises(ConfigError, match="zero_init_last"):
        GPT(**TINY, zero_init_last=True, shortcut="rezero")


@pytest.mark.skipif("deepnorm" not in SHORTCUTS, reason="deepnorm shortcut not registered")
def test_deepnorm_beta_scales_value_and_ffn_only() -> None:
    with pytest.raises(ConfigError, match=r"^norm: 'pre_ln'"):
        GPT(**TINY, shortcut="deepnorm")
    torch.manual_seed(0)
    plain = GPT(**TINY, norm="post_ln")
    torch.manual_seed(0)
    deep = GPT(**TINY, norm="post_ln", shortcut="deepnorm")
    d = TINY["dim"]
    for bp, bd in zip(plain.stack.blocks, deep.stack.blocks, strict=True):
        beta = bd.attn.shortcut.beta
        assert 0 < beta < 1
        qkv_p, qkv_d = bp.attn.branch.qkv.weight, bd.attn.branch.qkv.weight
        assert torch.equal(qkv_d[: 2 * d], qkv_p[: 2 * d])  # q, k untouched
        assert torch.allclose(qkv_d[2 * d :], beta * qkv_p[2 * d :])
        for name in ("attn.branch.proj", "mlp.branch.fc1", "mlp.branch.fc2"):
            wp, wd = bp.get_submodule(name).weight, bd.get_submodule(name).weight
            assert torch.allclose(wd, beta * wp)
    assert torch.equal(plain.embed.wte.weight, deep.embed.wte.weight)


def test_no_activations_are_kept_between_forwards() -> None:
    model = GPT(**TINY, shortcut="laurel_pa")
    loss = model(torch.randint(0, V, (2, BS))).sum()
    copy.deepcopy(model)  # would fail on stored non-leaf activations
    loss.backward()
    assert not [k for k, v in vars(model.stack).items() if isinstance(v, (dict, list)) and v and not k.startswith("_")]


@pytest.fixture
def one_thread():
    # Tiny models: on a shared 2-core machine, intra-op threading costs 10x more than it saves.
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def test_overfits_a_fixed_batch(one_thread) -> None:
    torch.manual_seed(0)
    model = GPT(**TINY)
    idx = torch.randint(0, V, (4, BS + 1))
    x, y = idx[:, :-1], idx[:, 1:]
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    for _ in range(80):
        loss = F.cross_entropy(model(x).flatten(0, 1), y.flatten())
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.1 * math.log(V)


@pytest.mark.skipif("highway" not in SHORTCUTS, reason="highway shortcut not registered")
def test_model_init_leaves_shortcut_parameters_alone() -> None:
    model = GPT(**TINY, shortcut={"name": "highway", "gate_bias": -3.0})
    for block in model.stack.blocks:
        for sub in (block.attn, block.mlp):
            assert torch.equal(sub.shortcut.gate.bias, torch.full_like(sub.shortcut.gate.bias, -3.0))


@pytest.mark.parametrize("seed", [0, 1])
def test_gpt_nano_is_nanogpt_parameter_for_parameter(seed: int) -> None:
    """Same seed -> nanoGPT's exact initial weights (same shapes, order and RNG draws) and the same logits."""
    from benchmarks.references import NanoGPT

    torch.manual_seed(seed)
    ref = NanoGPT(vocab_size=65, block_size=64, n_layer=4, n_head=4, n_embd=128)  # nanoGPT's CPU config
    torch.manual_seed(seed)
    ours = build_model("gpt_nano", vocab_size=65)
    assert [p.shape for p in ours.parameters()] == [p.shape for p in ref.parameters()]
    assert all(torch.equal(p, q) for p, q in zip(ours.parameters(), ref.parameters()))
    ids = torch.randint(0, 65, (3, 64))
    torch.testing.assert_close(ours(ids), ref(ids), rtol=0, atol=1e-6)


def test_no_bias_drops_layernorm_bias_too() -> None:
    """``bias=False`` as nanoGPT: no additive bias in Linears or LayerNorms (RMSNorm has none anyway)."""
    model = GPT(**TINY, bias=False)
    norms = [m for m in model.modules() if isinstance(m, nn.LayerNorm)]
    assert len(norms) == 2 * 2 + 1 and all(m.bias is None for m in norms)
    assert all(m.bias is None for m in model.modules() if isinstance(m, nn.Linear))
    assert all(m.bias is not None for m in GPT(**TINY).modules() if isinstance(m, nn.LayerNorm))
