import pytest
import torch
import torch.nn.functional as F
from torch import nn

from resblocks import ConfigError, build_model
from resblocks.models.text_encoder import TransformerClassifier

V, L = 40, 12
TINY = dict(vocab_size=V, num_classes=3, max_len=L, depth=2, dim=16, heads=2, dropout=0.0)


def test_forward_backward_with_every_shortcut(shortcut_case: tuple) -> None:
    name, placement = shortcut_case
    model = TransformerClassifier(**TINY, shortcut=name, **({"norm": placement} if placement else {}))
    ids = torch.randint(1, V, (3, L))
    ids[1, 7:] = 0
    logits = model(ids)
    assert logits.shape == (3, 3)
    F.cross_entropy(logits, torch.tensor([0, 1, 2])).backward()
    assert torch.isfinite(model.embed.wte.weight.grad).all()


@pytest.mark.parametrize("pool", ["mean", "cls"])
@pytest.mark.parametrize("norm", ["post_ln", "pre_ln"])
def test_padding_does_not_change_the_prediction(pool: str, norm: str) -> None:
    torch.manual_seed(0)
    model = TransformerClassifier(**TINY, pool=pool, norm=norm).eval()
    assert model.no_weight_decay() == ({"cls_token"} if pool == "cls" else set())
    short = torch.randint(1, V, (1, 5))
    padded = torch.cat((short, torch.zeros(1, 4, dtype=torch.long)), dim=1)  # pad_id 0 -> mask by default
    assert torch.allclose(model(padded), model(short), atol=1e-5)
    junk = torch.cat((short, torch.randint(1, V, (1, 4))), dim=1)
    pad = torch.arange(9)[None] >= 5
    assert torch.allclose(model(junk, pad_mask=pad), model(short), atol=1e-5)
    assert not torch.allclose(model(junk), model(short), atol=1e-4)  # unmasked, the tokens count


def test_masked_mean_pool_written_out() -> None:
    torch.manual_seed(0)
    model = TransformerClassifier(**TINY)
    ids = torch.randint(1, V, (2, 6))
    ids[0, 4:] = 0
    pad = ids == 0
    x = model.stack(model.embed(ids), pad_mask=pad)
    want = torch.stack([x[0, :4].mean(0), x[1].mean(0)])
    assert torch.allclose(model.forward_features(ids), want, atol=1e-6)


def test_defaults_are_post_ln_without_final_norm(assert_stack_sites) -> None:
    model = TransformerClassifier(**TINY)
    assert isinstance(model.stack.norm, nn.Identity)
    assert isinstance(model.stack.blocks[0].attn.post_norm, nn.LayerNorm)
    assert_stack_sites(model, 2)
    assert isinstance(TransformerClassifier(**TINY, norm="peri_ln").stack.norm, nn.LayerNorm)


def test_errors_and_registry() -> None:
    with pytest.raises(ConfigError, match=r"^input: sequence length 13 exceeds the context; valid: <= 12$"):
        TransformerClassifier(**TINY)(torch.ones(1, L + 1, dtype=torch.long))
    with pytest.raises(ConfigError, match=r"^pad_id: 40; valid: None or 0..39$"):
        TransformerClassifier(**TINY, pad_id=V)
    with pytest.raises(ConfigError, match=r"^pool: unknown 'max'"):
        TransformerClassifier(**TINY, pool="max")
    with pytest.raises(ConfigError, match=r"^heads: dim 16 is not divisible by heads 5"):
        TransformerClassifier(**{**TINY, "heads": 5})
    model = build_model("transformer_classifier", vocab_size=V, num_classes=4, depth=1, dim=8, heads=2)
    assert model(torch.randint(0, V, (2, 7))).shape == (2, 4)
    nopad = TransformerClassifier(**TINY, pad_id=None)
    ids = torch.zeros(1, 5, dtype=torch.long)  # token 0 is an ordinary token here
    assert torch.isfinite(nopad(ids)).all()
