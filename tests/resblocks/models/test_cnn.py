"""Every CNN builder at tiny size: forward/backward on 1-channel 28x28, Site bookkeeping, option plumbing."""

import inspect

import pytest
import torch
from torch import nn

from resblocks import MODELS, SHORTCUTS, ConfigError, Residual, build_model
from resblocks.blocks.downsample import PadDownsample
from resblocks.models._cnn import blocks_per_stage
from resblocks.models._variants import register_variant
from resblocks.shortcuts import Shortcut

CNN_MODULES = {
    f"resblocks.models.{m}"
    for m in ("resnet_cifar", "resnet_imagenet", "preact_resnet", "wide_resnet", "resnext", "densenet")
}
CNN_NAMES = sorted(n for n in MODELS.names() if MODELS.get(n).__module__ in CNN_MODULES)
DENSE = {n for n in CNN_NAMES if MODELS.get(n).__module__.endswith("densenet")}

# The generic builders at tiny size; every named variant pins options of one of them.
TINY = {
    "cifar_resnet": dict(depth=8),
    "preact_resnet": dict(depth=11, block="bottleneck"),
    "resnet": dict(layers=(1, 1, 1, 1), block="basic"),
    "wide_resnet": dict(depth=10, widen_factor=1, dropout=0.1),
    "resnext": dict(depth=11, cardinality=2, base_width=4),
    "densenet": dict(block_config=(1, 2), growth_rate=4, num_init_features=8),
    "densenet_bc": dict(depth=10, growth_rate=4),
}
RESIDUAL_TINY = sorted(set(TINY) - DENSE)


def tiny(name: str, **options) -> nn.Module:
    torch.manual_seed(0)
    return build_model(name, num_classes=5, in_chans=1, **TINY[name], **options)


def residuals(model: nn.Module) -> list[Residual]:
    return [m for m in model.modules() if isinstance(m, Residual)]


def test_every_cnn_model_is_a_tiny_builder_or_a_variant_of_one() -> None:
    assert len(CNN_NAMES) >= 30
    for name in CNN_NAMES:
        fn = MODELS.get(name)
        builder = getattr(fn, "builder", fn)
        assert builder.__name__ in TINY, name
        assert set(getattr(fn, "pinned", {})) <= set(inspect.signature(builder).parameters)


@pytest.mark.parametrize("name", CNN_NAMES)
def test_builder_signature_conventions(name: str) -> None:
    params = inspect.signature(MODELS.get(name)).parameters
    assert all(p.kind is p.KEYWORD_ONLY for p in params.values()), name
    assert params["num_classes"].default is inspect.Parameter.empty
    assert params["in_chans"].default == 3
    if name in DENSE:
        assert params["shortcut"].default is None  # no residual shortcut to choose
    else:
        assert params["shortcut"].default == "identity" and params["zero_init_last"].default is False


@pytest.mark.parametrize("name", sorted(TINY))
def test_tiny_forward_backward_on_fashion_mnist_shape(name: str) -> None:
    model = tiny(name).train()
    x = torch.randn(2, 1, 28, 28)
    y = model(x)
    assert y.shape == (2, 5) and torch.isfinite(y).all()
    y.square().sum().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert not missing
    model.eval()
    assert model(x).shape == (2, 5)


@pytest.mark.parametrize("name", RESIDUAL_TINY)
def test_sites_count_blocks_in_forward_order(name: str) -> None:
    model = tiny(name)
    blocks = residuals(model)
    sites = [b.shortcut.site for b in blocks]
    assert [s.index for s in sites] == list(range(len(blocks)))
    assert all(s.total == len(blocks) for s in sites)
    assert all(s.per_block == 1 and s.blocks == len(blocks) for s in sites)
    assert all(s.dim == b.branch.out_chans and s.layout == "image" for s, b in zip(sites, blocks, strict=True))


class Reader(Shortcut):
    """A rule that reads up to 8 earlier activations, as LAuReL-PA does, and records what it got."""

    num_previous = 8

    def forward(self, fx: torch.Tensor, x: torch.Tensor, prev: list[torch.Tensor]) -> torch.Tensor:
        self.got = (x, list(prev))
        return fx + x


@pytest.mark.parametrize("name", RESIDUAL_TINY)
def test_previous_activations_are_the_earlier_shortcut_inputs_of_the_stage(name: str) -> None:
    model = tiny(name, shortcut=Reader).eval()
    blocks = residuals(model)
    x = torch.randn(2, 1, 28, 28)
    for _ in range(2):  # a second forward starts afresh: nothing is carried over
        model(x)
        for i, b in enumerate(blocks):
            same = [blocks[j].shortcut.got[0] for j in range(i - 1, -1, -1)]
            stage = []
            for a in same:  # newest first, until the shape changes (an earlier stage)
                if a.shape != b.shortcut.got[0].shape:
                    break
                stage.append(a)
            assert [id(t) for t in b.shortcut.got[1]] == [id(t) for t in stage[:8]], i


@pytest.mark.parametrize("name", RESIDUAL_TINY)
def test_options_reach_every_block(name: str) -> None:
    zero = tiny(name, zero_init_last=True)
    assert all(b.branch.zero_init_last and b.branch.output_layer().weight.abs().sum() == 0 for b in residuals(zero))
    plain = tiny(name, shortcut="none")
    assert all(isinstance(b.downsample, nn.Identity) for b in residuals(plain))
    assert all(isinstance(b.shortcut, SHORTCUTS.get("none")) for b in residuals(plain))
    padded = tiny(name, downsample="pad")
    assert any(isinstance(b.downsample, PadDownsample) for b in residuals(padded))


def test_densenet_has_no_shortcut_to_choose() -> None:
    for name in DENSE:
        with pytest.raises(ConfigError, match=r"^shortcut: 'identity': DenseNet concatenates .*; valid: null$"):
            build_model(name, num_classes=3, **TINY.get(name, {}), shortcut="identity")


def test_register_variant_pins_options() -> None:
    options = MODELS.options("cifar_resnet56")
    assert "depth" not in options and options["downsample"] == "pad"
    with pytest.raises(ConfigError, match="^model.depth: unknown option for model 'cifar_resnet56'"):
        build_model("cifar_resnet56", num_classes=10, depth=20)
    fn = MODELS.get("cifar_resnet56")
    with pytest.raises(
        ConfigError, match=r"^depth: fixed to 56 by 'cifar_resnet56'; valid: use 'cifar_resnet' to change it$"
    ):
        fn(num_classes=10, depth=20)
    with pytest.raises(ConfigError, match="registered twice"):
        register_variant("cifar_resnet56", fn.builder, "dup", depth=56)


def test_depth_rules() -> None:
    assert blocks_per_stage(110, per_block=2, extra=2) == 18
    assert blocks_per_stage(28, per_block=2, extra=4) == 4
    with pytest.raises(ConfigError, match=r"^depth: 21; valid: 6n\+2 for n >= 1 \(8, 14, \.\.\.\)$"):
        build_model("cifar_resnet", num_classes=10, depth=21)
    with pytest.raises(ConfigError, match=r"^depth: 24; valid: 9n\+2"):
        build_model("preact_resnet", num_classes=10, depth=24, block="bottleneck")


def test_a_learned_rule_keeps_its_own_init_inside_a_model() -> None:
    # LAuReL-LR's up-projection starts at zero, so the model starts as its identity-shortcut twin.
    ident = tiny("cifar_resnet").eval()
    lr = tiny("cifar_resnet", shortcut={"name": "laurel_lr", "rank": 4}).eval()
    missing, unexpected = lr.load_state_dict(ident.state_dict(), strict=False)
    assert not unexpected and missing and all(".shortcut." in k for k in missing)
    x = torch.randn(2, 1, 28, 28)
    assert torch.allclose(lr(x), ident(x), atol=1e-6)


@pytest.mark.parametrize("name", ["cifar_resnet", "preact_resnet"])
def test_previous_activation_rule_trains_across_stages(name: str) -> None:
    # PA reads earlier shortcut inputs; stage boundaries (padded or projected) change the shape, so it mixes within stages.
    model = tiny(name, shortcut={"name": "laurel_rw_lr_pa", "rank": 4}).train()
    for _ in range(2):
        model.zero_grad()
        model(torch.randn(2, 1, 28, 28)).square().mean().backward()
        rule_grads = [p.grad for n, p in model.named_parameters() if ".shortcut." in n]
        assert rule_grads and all(g is not None and torch.isfinite(g).all() for g in rule_grads)
