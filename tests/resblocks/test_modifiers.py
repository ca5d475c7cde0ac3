"""Branch-output modifiers (resblocks.modifiers): LayerScale and stochastic depth, composed with any rule."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torchvision.ops import StochasticDepth

import resblocks
from resblocks import ConfigError, LayerScale, Residual, Site, branch_output
from resblocks.modifiers import BranchOutput, drop_path_rate_at
from resblocks.shortcuts import shortcut_factory


def residuals(model: nn.Module) -> list[Residual]:
    return [m for m in model.modules() if isinstance(m, Residual)]


def drop_rate(r: Residual) -> float:
    dp = getattr(r.branch_out, "drop_path", None)
    return dp.p if isinstance(dp, StochasticDepth) else 0.0


def test_off_collapses_to_identity() -> None:
    assert isinstance(branch_output(Site(8)), nn.Identity)
    model = resblocks.build_model("gpt", vocab_size=11, block_size=8, depth=2, dim=16, heads=2)
    assert all(isinstance(r.branch_out, nn.Identity) for r in residuals(model))


@pytest.mark.parametrize(
    "name, options, blocks",
    [
        ("gpt", dict(vocab_size=11, block_size=8, depth=5, dim=16, heads=2), 5),
        ("vit", dict(image_size=8, patch_size=4, in_chans=1, num_classes=3, depth=3, dim=16, heads=2), 3),
        ("cifar_resnet", dict(depth=14, width=4, in_chans=1, num_classes=3), 6),
        ("resnet", dict(layers=(1, 2, 1, 1), in_chans=1, num_classes=3), 5),
    ],
)
def test_per_depth_rates_are_linspace_over_blocks(name: str, options: dict, blocks: int) -> None:
    model = resblocks.build_model(name, drop_path_rate=0.2, **options)
    res = residuals(model)
    per_block = len(res) // blocks  # Transformers: attention and MLP share their block's rate
    rates = [drop_rate(r) for r in res[::per_block]]
    torch.testing.assert_close(torch.tensor(rates), torch.linspace(0, 0.2, blocks), rtol=0, atol=1e-7)
    assert all(drop_rate(a) == drop_rate(b) for a, b in zip(res[::per_block], res[per_block - 1 :: per_block]))
    assert isinstance(res[0].branch_out, nn.Identity)  # rate 0: the first block has no DropPath at all


def test_rate_formula_and_one_block() -> None:
    assert drop_path_rate_at(Site(8, index=3, total=8, per_block=2), 0.3) == pytest.approx(0.1)
    assert drop_path_rate_at(Site(8, index=0, total=1), 0.5) == 0.0


def test_drop_path_drops_whole_samples_in_training_and_is_off_in_eval() -> None:
    torch.manual_seed(0)
    out = branch_output(Site(4, index=1, total=2), drop_path_rate=0.5)
    fx = torch.ones(256, 3, 4)
    y = out.train()(fx)
    kept = y.flatten(1).amax(1)
    assert set(kept.unique().tolist()) == {0.0, 2.0}  # dropped, or kept and scaled by 1/(1-p)
    assert torch.equal(y, kept.view(-1, 1, 1).expand_as(y))  # whole samples, not elements
    assert 0.35 < (kept == 0).float().mean() < 0.65
    assert torch.equal(out.eval()(fx), fx)


def test_eval_is_deterministic_with_drop_path() -> None:
    model = resblocks.build_model("cifar_resnet", depth=8, width=4, in_chans=1, num_classes=3, drop_path_rate=0.5)
    x = torch.randn(4, 1, 16, 16)
    model.eval()
    assert torch.equal(model(x), model(x))
    model.train()
    torch.manual_seed(0)
    a = model(x)
    torch.manual_seed(1)
    assert not torch.equal(a, model(x))  # training draws a new mask


@pytest.mark.parametrize("layout", ["token", "image"])
def test_layer_scale_equation(layout: str) -> None:
    site = Site(6, layout)  # type: ignore[arg-type]
    ls = LayerScale(site, 0.1)
    with torch.no_grad():
        ls.scale.copy_(torch.arange(6.0))
    fx = torch.randn(2, 6, 3, 3) if layout == "image" else torch.randn(2, 3, 6)
    view = (1, 6, 1, 1) if layout == "image" else (6,)
    torch.testing.assert_close(ls(fx), fx * torch.arange(6.0).view(view))
    ls.reset_parameters()
    assert torch.equal(ls.scale, torch.full((6,), 0.1))


def test_layer_scale_rule_is_identity_plus_the_modifier() -> None:
    site = Site(8, index=1, total=4)
    rule = shortcut_factory("layerscale", init_values=0.3)(site)
    mod = branch_output(site, layer_scale_init=0.3)
    fx, x = torch.randn(2, 3, 8), torch.randn(2, 3, 8)
    assert isinstance(rule.ls, LayerScale) and isinstance(mod, BranchOutput)
    torch.testing.assert_close(rule(fx, x), x + mod(fx))


@pytest.mark.parametrize(
    "name, options, rule",
    [
        ("gpt", dict(vocab_size=11, block_size=8, depth=2, dim=16, heads=2, drop_path_rate=0.2), "decayed"),
        ("vit", dict(image_size=8, patch_size=4, in_chans=1, num_classes=3, depth=2, dim=16, heads=2,
                     layer_scale_init=1e-2), {"name": "laurel_rw_lr", "rank": 4}),
        ("cifar_resnet", dict(depth=8, width=4, in_chans=1, num_classes=3, drop_path_rate=0.2, layer_scale_init=0.1),
         {"name": "laurel_rw_lr", "rank": 4}),
        ("cifar_resnet", dict(depth=8, width=4, in_chans=1, num_classes=3, drop_path_rate=0.2), "decayed"),
    ],
)
def test_modifiers_compose_with_rules_and_train(name: str, options: dict, rule) -> None:
    torch.manual_seed(0)
    model = resblocks.build_model(name, shortcut=rule, **options).train()
    x = torch.randn(4, 1, 8, 8) if name == "vit" else torch.randn(4, 1, 16, 16)
    if name == "gpt":
        x = torch.randint(0, 11, (4, 8))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(20):
        opt.zero_grad()
        out = model(x)
        loss = out.float().square().mean()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]
    scales = [m.scale for m in model.modules() if isinstance(m, LayerScale)]
    assert not options.get("layer_scale_init") or (scales and all(s.grad is not None for s in scales))


def test_bad_values_and_two_zero_gates_are_refused() -> None:
    tiny = dict(vocab_size=11, block_size=8, depth=2, dim=16, heads=2)
    with pytest.raises(ConfigError, match=r"^residual\.drop_path_rate: 1\.0; valid: a float in \[0, 1\)$"):
        resblocks.build_model("gpt", drop_path_rate=1.0, **tiny)
    with pytest.raises(ConfigError, match=r"^residual\.layer_scale_init: nan; valid: null or a finite float >= 0$"):
        resblocks.build_model("gpt", layer_scale_init=float("nan"), **tiny)
    with pytest.raises(ConfigError, match=r"^shortcut: the LayerScale starts at zero and the branch's last layer"):
        resblocks.build_model("gpt", layer_scale_init=0.0, zero_init_last=True, **tiny)
    with pytest.raises(ConfigError, match=r"^shortcut: shortcut ReZeroShortcut starts its gate at zero and the Lay"):
        resblocks.build_model("gpt", layer_scale_init=0.0, shortcut="rezero", norm="none", **tiny)
    resblocks.build_model("gpt", layer_scale_init=0.0, **tiny)  # one zero mechanism alone is fine
