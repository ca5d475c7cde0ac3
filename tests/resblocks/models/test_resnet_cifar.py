"""CIFAR ResNet-(6n+2): Table 6 parameter counts, option A = the plain net's parameters, feature-map sizes."""

import pytest
import torch

from resblocks import build_model
from resblocks.blocks.downsample import PadDownsample


def n_params(name: str, **options) -> int:
    with torch.device("meta"):  # counts need no memory or init time (ResNet-1202 has 19.4M)
        model = build_model(name, **options)
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize(
    "depth, paper", [(20, 0.27e6), (32, 0.46e6), (44, 0.66e6), (56, 0.85e6), (110, 1.7e6), (1202, 19.4e6)]
)
def test_param_counts_match_table6(depth: int, paper: float) -> None:
    assert n_params(f"cifar_resnet{depth}", num_classes=10) == pytest.approx(paper, rel=0.02)


def test_option_a_has_exactly_the_plain_nets_parameters() -> None:
    resnet = n_params("cifar_resnet20", num_classes=10)
    assert resnet == n_params("cifar_resnet20", num_classes=10, shortcut="none")
    projections = 16 * 32 + 2 * 32 + 32 * 64 + 2 * 64  # two 1x1 convs + BN where the shape changes (option B)
    assert n_params("cifar_resnet20", num_classes=10, downsample="conv") == resnet + projections


def test_stage_resolutions_and_option_a_default() -> None:
    model = build_model("cifar_resnet20", num_classes=10).eval()
    assert model.forward_features(torch.randn(2, 3, 32, 32)).shape == (2, 64, 8, 8)  # 32 -> 16 -> 8
    assert model.forward_features(torch.randn(2, 3, 28, 28)).shape == (2, 64, 7, 7)  # Fashion-MNIST size
    assert sum(isinstance(m, PadDownsample) for m in model.modules()) == 2
