"""``model.init_weights()`` re-runs the library's whole init, shortcut rules and modifiers included (timm's style)."""

from __future__ import annotations

import pytest
import torch

import resblocks
from resblocks import SHORTCUTS

TINY = {
    "gpt": dict(vocab_size=11, block_size=8, depth=2, dim=32, heads=2),
    "vit": dict(image_size=8, patch_size=4, in_chans=1, num_classes=3, depth=2, dim=32, heads=2),
    "transformer_classifier": dict(vocab_size=11, num_classes=3, max_len=8, depth=2, dim=32, heads=2, pool="cls"),
    "cifar_resnet": dict(depth=8, width=16, in_chans=1, num_classes=3),
    "preact_resnet": dict(depth=11, width=8, in_chans=3, num_classes=3),
    "resnet": dict(layers=(1, 1, 1, 1), block="bottleneck", in_chans=3, num_classes=3),
}
MODIFIERS = dict(drop_path_rate=0.1, layer_scale_init=0.5)


def cases():
    for model in TINY:
        layout = "image" if "resnet" in model else "token"
        for rule in SHORTCUTS.names():
            cls = SHORTCUTS.get(rule)
            if layout in cls.layouts:
                yield pytest.param(model, rule, cls.requires_norm if layout == "token" else None, id=f"{model}-{rule}")


def build(model: str, rule: str, norm: str | None, seed: int, **extra) -> torch.nn.Module:
    torch.manual_seed(seed)
    opts = dict(TINY[model], shortcut={"name": rule, "rank": 4} if "rank" in SHORTCUTS.options(rule) else rule)
    if norm:
        opts["norm"] = norm
    return resblocks.build_model(model, **opts, **extra)


@pytest.mark.parametrize("model,rule,norm", list(cases()))
def test_init_weights_restores_the_library_init(model: str, rule: str, norm: str | None) -> None:
    a, b = build(model, rule, norm, 0, **MODIFIERS), build(model, rule, norm, 1, **MODIFIERS)
    fixed = {n for (n, p), q in zip(a.named_parameters(), b.parameters()) if torch.equal(p, q)}  # seed-independent
    with torch.no_grad():
        for p in b.parameters():
            p.fill_(float("nan"))
    torch.manual_seed(2)
    b.init_weights()
    for (n, p), q in zip(a.named_parameters(), b.parameters()):
        assert torch.isfinite(q).all(), f"{n} was not re-initialised"
        if n in fixed:  # constants: zeros, ones, gates, LayerScale, LAuReL's alpha/beta/gamma and zero up-projections
            assert torch.equal(q, p), n
        elif p.numel() >= 256:  # random: drawn from the same distribution
            assert q.std().item() == pytest.approx(p.std().item(), rel=0.25), n


def test_init_weights_keeps_rule_specific_branch_init() -> None:
    # DeepNorm scales the branch at init (beta); re-initialising must apply it again, after the branch init.
    torch.manual_seed(0)
    m = resblocks.build_model("gpt", **TINY["gpt"], shortcut="deepnorm", norm="post_ln")
    before = m.stack.blocks[0].mlp.branch.fc1.weight.std().item()
    m.init_weights()
    assert m.stack.blocks[0].mlp.branch.fc1.weight.std().item() == pytest.approx(before, rel=0.1)
    plain = resblocks.build_model("gpt", **TINY["gpt"], norm="post_ln")
    assert before < 0.8 * plain.stack.blocks[0].mlp.branch.fc1.weight.std().item()
