import pytest
import torch
import torch.nn.functional as F
from torch import nn

from resblocks import MODELS, ConfigError, build_model
from resblocks.models.vit import ViT

TINY = dict(depth=2, dim=16, heads=2, mlp_ratio=2.0, num_classes=5)


@pytest.mark.parametrize("chans,size,patch", [(1, 28, 7), (3, 32, 8)], ids=["1x28x28", "3x32x32"])
def test_forward_backward_with_every_shortcut(shortcut_case: tuple, chans: int, size: int, patch: int) -> None:
    name, placement = shortcut_case
    model = ViT(**TINY, in_chans=chans, image_size=size, patch_size=patch, shortcut=name,
                **({"norm": placement} if placement else {}))
    logits = model(torch.randn(2, chans, size, size))
    assert logits.shape == (2, 5)
    F.cross_entropy(logits, torch.tensor([0, 3])).backward()
    assert model.patch_embed.weight.grad is not None and torch.isfinite(model.patch_embed.weight.grad).all()


@pytest.mark.parametrize("pool", ["cls", "mean"])
def test_pooling_and_token_count(pool: str) -> None:
    torch.manual_seed(0)
    model = ViT(**TINY, in_chans=1, image_size=28, patch_size=4, pool=pool)
    assert model.pos_embed.shape == (1, 49 + (pool == "cls"), 16)
    assert (model.cls_token is not None) is (pool == "cls")
    assert model.no_weight_decay() == ({"pos_embed", "cls_token"} if pool == "cls" else {"pos_embed"})
    assert model.no_weight_decay() <= {n for n, _ in model.named_parameters()}
    img = torch.randn(2, 1, 28, 28)
    tokens = model.patch_embed(img).flatten(2).transpose(1, 2)
    if pool == "cls":
        tokens = torch.cat((model.cls_token.expand(2, -1, -1), tokens), dim=1)
    x = model.stack(tokens + model.pos_embed)
    want = x[:, 0] if pool == "cls" else x.mean(1)
    assert torch.allclose(model.forward_features(img), x, atol=1e-6)  # unpooled tokens, as timm's ViT
    assert torch.allclose(model.forward_head(model.forward_features(img), pre_logits=True), want, atol=1e-6)
    assert torch.allclose(model(img), model.head(want), atol=1e-6)


def test_sites_and_final_norm(assert_stack_sites) -> None:
    model = ViT(**{**TINY, "depth": 3})
    assert_stack_sites(model, 3)
    assert isinstance(model.stack.norm, nn.LayerNorm)  # pre_ln default
    assert isinstance(ViT(**TINY, norm="post_ln").stack.norm, nn.Identity)


def test_init() -> None:
    torch.manual_seed(0)
    model = ViT(in_chans=3, image_size=32, patch_size=4, dim=192, depth=2, heads=3)
    assert model.pos_embed.std().item() == pytest.approx(0.02, rel=0.05)
    assert model.stack.blocks[0].attn.branch.proj.weight.std().item() == pytest.approx(0.01, rel=0.05)  # 0.02/sqrt(4)
    assert not model.patch_embed.bias.any() and not model.head.bias.any()


def test_errors() -> None:
    with pytest.raises(ConfigError, match=r"^patch_size: image_size 30 is not divisible by patch_size 4; valid: "):
        ViT(**TINY, image_size=30, patch_size=4)
    with pytest.raises(ConfigError, match=r"^heads: dim 16 is not divisible by heads 3"):
        ViT(**{**TINY, "heads": 3})
    with pytest.raises(ConfigError, match=r"^pool: unknown 'max'; valid: cls, mean$"):
        ViT(**TINY, pool="max")
    with pytest.raises(ConfigError, match=r"^input: image size \(28, 28\); valid: \(32, 32\)$"):
        ViT(**TINY)(torch.randn(1, 3, 28, 28))
    with pytest.raises(ConfigError, match=r"^depth: 0; valid: >= 1$"):
        ViT(**{**TINY, "depth": 0})


def test_presets() -> None:
    fm = build_model("vit_fmnist", num_classes=10)
    assert fm(torch.randn(2, 1, 28, 28)).shape == (2, 10)
    assert sum(p.numel() for p in fm.parameters()) < 300_000  # CPU-sized
    tiny = MODELS.options("vit_tiny")
    assert (tiny["dim"], tiny["depth"], tiny["heads"], tiny["patch_size"]) == (192, 12, 3, 4)
    assert build_model("vit_cifar", depth=1)(torch.randn(1, 3, 32, 32)).shape == (1, 10)
