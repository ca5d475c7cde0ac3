"""Conv branches: layer layout (v1.5 stride, ResNeXt width), He init, zero_init_last, pre-activation order."""

import math

import pytest
import torch
from torch import nn

from resblocks import ConfigError
from resblocks.branches.conv import BasicBranch, BottleneckBranch, bottleneck_width, image_norm


def test_bottleneck_layout_v15_and_grouped_width() -> None:
    # ResNeXt 32x4d at planes=64: width int(64 * 4 / 64) * 32 = 128, grouped 3x3 carries the stride (v1.5).
    b = BottleneckBranch(64, 64, 2, groups=32, base_width=4)
    assert b.conv1.weight.shape == (128, 64, 1, 1) and b.conv1.stride == (1, 1)
    assert b.conv2.weight.shape == (128, 4, 3, 3) and b.conv2.stride == (2, 2) and b.conv2.groups == 32
    assert b.conv3.weight.shape == (256, 128, 1, 1) and b.out_chans == 256
    assert b(torch.randn(2, 64, 9, 9)).shape == (2, 256, 5, 5)
    assert bottleneck_width(64, 1, 128) == 128  # WRN-50-2: doubled inner width


def test_basic_branch_shapes_and_he_init() -> None:
    torch.manual_seed(0)
    b = BasicBranch(32, 64, 2)
    assert b(torch.randn(2, 32, 8, 8)).shape == (2, 64, 4, 4) and b.out_chans == 64
    fan_out = 64 * 3 * 3  # kaiming_normal_(mode="fan_out", nonlinearity="relu"): std = sqrt(2 / fan_out)
    assert b.conv2.weight.std().item() == pytest.approx(math.sqrt(2 / fan_out), rel=0.05)
    assert torch.equal(b.bn2.weight, torch.ones(64)) and torch.equal(b.bn2.bias, torch.zeros(64))


@pytest.mark.parametrize(
    "make, last",
    [
        (lambda z: BasicBranch(8, 16, 2, zero_init_last=z), "bn2"),
        (lambda z: BottleneckBranch(8, 4, 1, zero_init_last=z), "bn3"),
        (lambda z: BasicBranch(8, 16, 2, preact=True, zero_init_last=z), "conv2"),
        (lambda z: BottleneckBranch(8, 4, 1, preact=True, zero_init_last=z), "conv3"),
    ],
)
def test_zero_init_last_zeroes_only_the_output_layer(make, last: str) -> None:
    x = torch.randn(2, 8, 6, 6)
    off, on = make(False), make(True)
    assert off.zero_init_last is False and on.zero_init_last is True
    assert on.output_layer() is getattr(on, last)
    assert getattr(on, last).weight.abs().sum() == 0 and getattr(off, last).weight.abs().sum() > 0
    assert on.conv1.weight.abs().sum() > 0  # the rest keeps its He init
    for train in (True, False):
        assert on.train(train)(x).abs().max() == 0  # F(x) = 0 at init
        assert off.train(train)(x).abs().max() > 0


def test_preact_basic_order_and_dropout_between_convs() -> None:
    torch.manual_seed(0)
    b = BasicBranch(8, 8, preact=True, drop_rate=0.5).eval()
    a = torch.randn(2, 8, 5, 5)
    # conv -> BN -> ReLU -> (dropout) -> conv, no BN at the end (arXiv 1603.05027, Fig. 4e; the block pre-activates a).
    expected = b.conv2(torch.relu(b.bn1(b.conv1(a))))
    assert torch.allclose(b(a), expected, atol=1e-6)  # dropout is the identity in eval mode
    assert isinstance(b.bn2, nn.Identity) and isinstance(BasicBranch(8, 8).bn2, nn.BatchNorm2d)
    names = [n for n, _ in b.named_children()]
    assert names.index("act1") < names.index("drop") < names.index("conv2")
    b.train()
    assert not torch.allclose(b(a), expected)  # dropout active in training


def test_preact_bottleneck_layout() -> None:
    b = BottleneckBranch(16, 8, 2, preact=True, groups=2, base_width=32)
    assert b.conv2.stride == (2, 2) and b.conv2.groups == 2 and b.conv1.weight.shape[0] == 8
    assert b(torch.randn(2, 16, 8, 8)).shape == (2, 32, 4, 4)
    assert isinstance(b.bn3, nn.Identity) and b.output_layer() is b.conv3  # ends with a conv, no BN
    post = BottleneckBranch(16, 8, 2, groups=2, base_width=32)
    assert sum(p.numel() for p in post.parameters()) - sum(p.numel() for p in b.parameters()) == 2 * 32  # bn3


def test_norm_layer_by_name_and_refusals() -> None:
    assert isinstance(BasicBranch(4, 4, norm_layer="batchnorm").bn1, nn.BatchNorm2d)
    assert isinstance(image_norm(nn.BatchNorm2d)(3), nn.BatchNorm2d)
    with pytest.raises(ConfigError, match=r"^norm_layer: 'layernorm' does not normalise images; valid: batchnorm$"):
        BasicBranch(4, 4, norm_layer="layernorm")
    with pytest.raises(ConfigError, match="^base_width"):
        BottleneckBranch(4, 1, base_width=16)  # int(1 * 16 / 64) = 0 channels
