"""Shape-changing shortcuts: option A zero-padding and option B projection (He et al. 2016, Sec. 3.3)."""

import pytest
import torch
from torch import nn

from resblocks import ConfigError, build_block
from resblocks.blocks.downsample import PadDownsample, make_downsample


@pytest.mark.parametrize("size", [8, 7])  # odd sizes: x[::2] must match a stride-2 3x3/pad-1 conv (ceil(H/2))
def test_option_a_subsamples_and_zero_pads_channels_without_parameters(size: int) -> None:
    x = torch.randn(2, 16, size, size)
    pad = PadDownsample(16, 32, stride=2)
    y = pad(x)
    conv_size = nn.Conv2d(16, 32, 3, stride=2, padding=1)(x).shape[-1]
    assert y.shape == (2, 32, conv_size, conv_size)
    assert torch.equal(y[:, :16], x[:, :, ::2, ::2])
    assert torch.equal(y[:, 16:], torch.zeros_like(y[:, 16:]))
    assert sum(p.numel() for p in pad.parameters()) == 0


def test_make_downsample_only_where_the_shape_changes() -> None:
    assert make_downsample("conv", 16, 16, 1) is None and make_downsample("pad", 16, 16, 1) is None
    ds = make_downsample("conv", 16, 32, 2)
    assert isinstance(ds, nn.Sequential) and isinstance(ds[0], nn.Conv2d) and isinstance(ds[1], nn.BatchNorm2d)
    assert ds[0].kernel_size == (1, 1) and ds[0].stride == (2, 2) and ds[0].bias is None
    preact = make_downsample("conv", 16, 32, 2, norm_layer=None)  # pre-act: the next block's BN normalises the sum
    assert len(preact) == 1
    widen = make_downsample("pad", 16, 64, 1)  # channel change alone (bottleneck stage 1)
    assert widen(torch.randn(1, 16, 4, 4)).shape == (1, 64, 4, 4)


def test_option_a_block_adds_no_parameters_over_the_branch() -> None:
    block = build_block("basic", 16, 32, stride=2, downsample="pad")
    assert isinstance(block.downsample, PadDownsample)
    assert sum(p.numel() for p in block.parameters()) == sum(p.numel() for p in block.branch.parameters())
    x = torch.randn(2, 16, 7, 7)
    block.eval()
    assert torch.allclose(block(x), torch.relu(block.branch(x) + block.downsample(x)))


def test_option_a_refuses_to_shrink_and_unknown_kinds() -> None:
    with pytest.raises(ConfigError, match=r"^downsample: 'pad' cannot shrink 32 to 16 channels; valid: conv$"):
        make_downsample("pad", 32, 16, 2)
    with pytest.raises(ConfigError, match=r"^downsample: unknown kind 'B'"):
        make_downsample("B", 16, 32, 2)
