"""Conv blocks: equivalence with torchvision (post-act) and timm (pre-act) with weights copied, plain nets, Sites."""

from collections.abc import Callable

import pytest
import torch
from timm.layers import BatchNormAct2d, create_conv2d
from timm.models.resnetv2 import DownsampleConv, PreActBasic, PreActBottleneck
from torch import nn
from torchvision.models.resnet import BasicBlock, Bottleneck

from resblocks import BLOCKS, SHORTCUTS, ConfigError, Residual, Site, build_block
from resblocks.blocks.conv import ConvBlock
from resblocks.shortcuts import Shortcut


def load_renamed(mine: nn.Module, ref: nn.Module, rename: Callable[[str], str]) -> None:
    mine.load_state_dict({rename(k): v for k, v in ref.state_dict().items()}, strict=True)


def assert_equivalent(mine: nn.Module, ref: nn.Module, x: torch.Tensor, rename: Callable[[str], str]) -> None:
    """Same output and input gradient (max abs diff <= 1e-5), in train and eval mode, and same BN running stats."""
    for train in (True, False):
        mine.train(train), ref.train(train)
        xm, xr = x.clone().requires_grad_(), x.clone().requires_grad_()
        ym, yr = mine(xm), ref(xr)
        assert ym.shape == yr.shape
        assert (ym - yr).abs().max().item() <= 1e-5
        (ym * torch.arange(ym.numel()).view_as(ym).sin()).sum().backward()
        (yr * torch.arange(yr.numel()).view_as(yr).sin()).sum().backward()
        assert (xm.grad - xr.grad).abs().max().item() <= 1e-5
    mine_sd = mine.state_dict()
    for k, v in ref.state_dict().items():
        assert torch.allclose(mine_sd[rename(k)].float(), v.float(), atol=1e-6), k  # running stats moved the same way


def tv_rename(key: str) -> str:
    return key if key.startswith("downsample.") else f"branch.{key}"


def randomise_bn(module: nn.Module) -> None:
    # Non-trivial BN affine parameters and running stats, so eval mode tests more than the identity.
    g = torch.Generator().manual_seed(1)
    for m in module.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.weight.data = torch.rand(m.num_features, generator=g) + 0.5
            m.bias.data = torch.randn(m.num_features, generator=g) * 0.1
            m.running_mean = torch.randn(m.num_features, generator=g) * 0.1
            m.running_var = torch.rand(m.num_features, generator=g) + 0.5


@pytest.mark.parametrize("in_chans, out_chans, stride", [(16, 16, 1), (16, 32, 2)])
def test_basic_equals_torchvision_basicblock(in_chans: int, out_chans: int, stride: int) -> None:
    torch.manual_seed(0)
    mine = build_block("basic", in_chans, out_chans, stride=stride)
    ds = None
    if stride != 1 or in_chans != out_chans:
        ds = nn.Sequential(nn.Conv2d(in_chans, out_chans, 1, stride=stride, bias=False), nn.BatchNorm2d(out_chans))
    ref = BasicBlock(in_chans, out_chans, stride=stride, downsample=ds)
    randomise_bn(ref)
    load_renamed(mine, ref, tv_rename)
    assert isinstance(mine.downsample, nn.Identity) == (ds is None)
    assert_equivalent(mine, ref, torch.randn(4, in_chans, 9, 9), tv_rename)


@pytest.mark.parametrize(
    "in_chans, planes, stride, groups, base_width",
    [(32, 16, 2, 1, 64), (64, 32, 1, 32, 4)],  # stride 2 + downsample; ResNeXt 32x4d grouped 3x3 (+ width change)
)
def test_bottleneck_equals_torchvision_bottleneck(
    in_chans: int, planes: int, stride: int, groups: int, base_width: int
) -> None:
    torch.manual_seed(0)
    mine = build_block("bottleneck", in_chans, planes, stride=stride, groups=groups, base_width=base_width)
    out = planes * 4
    ds = nn.Sequential(nn.Conv2d(in_chans, out, 1, stride=stride, bias=False), nn.BatchNorm2d(out))
    ref = Bottleneck(in_chans, planes, stride=stride, downsample=ds, groups=groups, base_width=base_width)
    randomise_bn(ref)
    load_renamed(mine, ref, tv_rename)
    assert_equivalent(mine, ref, torch.randn(4, in_chans, 8, 8), tv_rename)


def timm_rename(key: str) -> str:
    # timm PreAct*: norm{k} precedes conv{k}; ours: pre_norm.bn precedes conv1 and bn{k} follows conv{k}.
    if key.startswith("norm1."):
        return key.replace("norm1.", "pre_norm.bn.")
    if key.startswith("downsample.conv."):
        return key.replace("downsample.conv.", "downsample.0.")
    if key.startswith("norm"):
        return f"branch.bn{int(key[4]) - 1}{key[5:]}"
    return f"branch.{key}"


TIMM_LAYERS = dict(conv_layer=create_conv2d, norm_layer=BatchNormAct2d, proj_layer=DownsampleConv)


@pytest.mark.parametrize(
    "name, ref_cls, in_chans, width, out_chans, stride",
    [
        ("preact_basic", PreActBasic, 16, 16, 16, 1),  # identity shortcut reads x itself
        ("preact_basic", PreActBasic, 16, 32, 32, 2),  # projection of the shared pre-activation
        ("preact_bottleneck", PreActBottleneck, 32, 16, 64, 2),
    ],
)
def test_preact_equals_timm_resnetv2_block(
    name: str, ref_cls: type, in_chans: int, width: int, out_chans: int, stride: int
) -> None:
    torch.manual_seed(0)
    mine = build_block(name, in_chans, width, stride=stride)
    ratio = 1.0 if name == "preact_basic" else 0.25
    ref = ref_cls(in_chans, out_chans, bottle_ratio=ratio, stride=stride, **TIMM_LAYERS)
    randomise_bn(ref)
    load_renamed(mine, ref, timm_rename)
    assert isinstance(mine, ConvBlock) and mine.preact and isinstance(mine.post_act, nn.Identity)
    assert_equivalent(mine, ref, torch.randn(4, in_chans, 8, 8), timm_rename)


@pytest.mark.parametrize(
    "name, preact", [("basic", False), ("bottleneck", False), ("preact_basic", True), ("preact_bottleneck", True)]
)
def test_plain_block_has_no_shortcut_path(name: str, preact: bool) -> None:
    # shortcut="none": out = ReLU(F(x)) (post-act) or F(BN-ReLU(x)) (pre-act), even where the shape changes.
    block = build_block(name, 8, 16, stride=2, shortcut="none")
    assert isinstance(block.downsample, nn.Identity)
    branch_params = sum(p.numel() for p in block.branch.parameters()) + sum(
        p.numel() for p in block.pre_norm.parameters()
    )
    assert sum(p.numel() for p in block.parameters()) == branch_params
    x = torch.randn(2, 8, 6, 6)
    for train in (True, False):
        block.train(train)
        expected = block.branch(block.pre_norm(x)) if preact else torch.relu(block.branch(x))
        assert torch.allclose(block(x), expected, atol=1e-6)


def test_zero_init_last_makes_the_block_start_at_its_shortcut() -> None:
    x = torch.randn(2, 8, 5, 5)
    post = build_block("basic", 8, 8, zero_init_last=True)
    assert torch.equal(post(x), torch.relu(x))  # relu(0 + x)
    pre = build_block("preact_bottleneck", 32, 8, zero_init_last=True)
    x = torch.randn(2, 32, 5, 5)
    assert torch.equal(pre(x), x)  # the clean identity path: x + 0


def test_zero_init_last_with_a_zero_gate_is_refused() -> None:
    with pytest.raises(ConfigError, match="^shortcut: .*zero_init_last=false"):
        build_block("basic", 8, 8, shortcut="rezero", zero_init_last=True)
    with pytest.raises(ConfigError, match="^shortcut: "):
        build_block("preact_bottleneck", 8, 4, shortcut="rezero", zero_init_last=True)
    build_block("basic", 8, 8, shortcut="rezero")  # one zero-init mechanism is fine


class Recorder(Shortcut):
    """A test rule: records what it was built with and the shapes it merges."""

    def forward(self, fx: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        self.shapes = (tuple(fx.shape), tuple(x.shape))
        return fx + x


@pytest.mark.parametrize(
    "name, downsample", [("basic", "conv"), ("basic", "pad"), ("preact_bottleneck", "conv"), ("bottleneck", "pad")]
)
def test_rule_gets_out_channel_site_and_acts_after_the_downsample(name: str, downsample: str) -> None:
    block = build_block(name, 8, 16, stride=2, shortcut=Recorder, downsample=downsample, index=3, total=5)
    out = block(torch.randn(2, 8, 7, 7))
    site: Site = block.shortcut.site
    assert (site.dim, site.layout, site.index, site.total) == (out.shape[1], "image", 3, 5)
    assert block.shortcut.shapes == (tuple(out.shape), tuple(out.shape))  # x was downsampled to F(x)'s shape first


IMAGE_RULES = [n for n in SHORTCUTS.names() if "image" in SHORTCUTS.get(n).layouts]


@pytest.mark.parametrize("rule", IMAGE_RULES)
@pytest.mark.parametrize("name", ["basic", "preact_basic"])
def test_every_image_rule_runs_in_a_downsampling_block(rule: str, name: str) -> None:
    block = build_block(name, 16, 32, stride=2, shortcut=rule, index=1, total=2)  # 32 >= default ranks
    x = torch.randn(2, 16, 6, 6, requires_grad=True)
    hiddens = {0: torch.randn(2, 32, 3, 3)}  # an earlier same-stage activation, for rules that read it
    y = block(x, hiddens=hiddens)
    y.square().sum().backward()
    assert y.shape == (2, 32, 3, 3) and x.grad is not None and torch.isfinite(x.grad).all()


def test_token_only_rules_and_bad_options_are_refused() -> None:
    with pytest.raises(ConfigError, match="^shortcut: 'deepnorm' does not support image layout"):
        build_block("basic", 8, 8, shortcut="deepnorm")
    with pytest.raises(ConfigError, match=r"^downsample: unknown kind 'avg'; valid: conv, pad$"):
        build_block("basic", 8, 16, stride=2, downsample="avg")
    with pytest.raises(ConfigError, match=r"^index: 5 outside the network's 5 blocks"):
        build_block("bottleneck", 8, 4, index=5, total=5)
    with pytest.raises(ConfigError, match=r"^block\.planes_: unknown option"):
        build_block("bottleneck", 8, 4, planes_=3)


def test_registered_conv_blocks_are_residuals() -> None:
    for name in ("basic", "bottleneck", "preact_basic", "preact_bottleneck"):
        assert name in BLOCKS
        block = BLOCKS.build(name, 8, 8)
        assert isinstance(block, Residual)
        assert isinstance(block.post_act, nn.ReLU) == (not name.startswith("preact"))
    assert BLOCKS.options("bottleneck")["downsample"] == "conv"


def test_a_plain_block_whose_branch_starts_at_zero_is_refused() -> None:
    # x_{l+1} = F(x_l) with F = 0 at init outputs zeros: nothing before it would ever get a gradient.
    with pytest.raises(ConfigError, match="^shortcut: NoShortcut passes only F.*zero_init_last=false"):
        build_block("basic", 8, 8, shortcut="none", zero_init_last=True)
    build_block("basic", 8, 8, shortcut="none")
