"""Pre-activation ResNets (arXiv 1603.05027): sizes, a bare-conv stem, no ReLU after the add, a final BN-ReLU."""

import pytest
import torch
from torch import nn

from resblocks import Residual, build_model
from resblocks.blocks.conv import ConvBlock


def n_params(name: str, **options) -> int:
    with torch.device("meta"):
        return sum(p.numel() for p in build_model(name, **options).parameters())


@pytest.mark.parametrize(
    "name, paper", [("preact_resnet110", 1.7e6), ("preact_resnet164", 1.7e6), ("preact_resnet1001", 10.2e6)]
)
def test_param_counts(name: str, paper: float) -> None:
    assert n_params(name, num_classes=10) == pytest.approx(paper, rel=0.02)


def test_imagenet_variants() -> None:
    assert n_params("preact_resnet18", num_classes=1000) == pytest.approx(11.7e6, rel=0.01)
    assert n_params("preact_resnet50", num_classes=1000) == pytest.approx(25.5e6, rel=0.01)
    model = build_model("resnet", num_classes=5, layers=(1, 1, 1, 1), preact=True, in_chans=1)
    assert list(dict(model.stem.named_children())) == ["conv1", "maxpool"] and isinstance(
        model.final.bn, nn.BatchNorm2d
    )
    y = model(torch.randn(2, 1, 28, 28))
    y.sum().backward()
    assert y.shape == (2, 5) and all(p.grad is not None for p in model.parameters())


def test_pre_activation_structure() -> None:
    model = build_model("preact_resnet", num_classes=10, depth=20, block="basic")
    assert list(dict(model.stem.named_children())) == ["conv1"]  # the first block pre-activates the stem conv
    blocks = [m for m in model.modules() if isinstance(m, Residual)]
    assert all(isinstance(b, ConvBlock) and b.preact and isinstance(b.post_act, nn.Identity) for b in blocks)
    assert isinstance(model.final.bn, nn.BatchNorm2d) and isinstance(model.final.act, nn.ReLU)
    # stream -> final BN-ReLU -> pool: the feature map is the post-ReLU of the un-normalised stream
    model.eval()
    x = torch.randn(2, 3, 16, 16)
    stream = model.stages(model.stem(x))
    assert torch.allclose(model.forward_features(x), torch.relu(model.final.bn(stream)))


def test_bottleneck_stages_widen_by_four() -> None:
    model = build_model("preact_resnet", num_classes=10, depth=11, block="bottleneck")
    assert [s[0].branch.out_chans for s in model.stages] == [64, 128, 256]
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)
