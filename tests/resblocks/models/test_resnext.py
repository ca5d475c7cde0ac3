"""ResNeXt: CIFAR ResNeXt-29 8x64d size (arXiv 1611.05431, Table 7) and torchvision's ResNeXt-50 32x4d."""

import pytest
import torch

from resblocks import build_model


def n_params(name: str, **options) -> int:
    with torch.device("meta"):
        return sum(p.numel() for p in build_model(name, **options).parameters())


def test_param_counts() -> None:
    assert n_params("resnext29_8x64d", num_classes=10) == pytest.approx(34.4e6, rel=0.02)
    assert n_params("resnext29_16x64d", num_classes=10) == pytest.approx(68.1e6, rel=0.02)
    assert n_params("resnext50_32x4d", num_classes=1000) == 25_028_904


def test_cifar_resnext_layout() -> None:
    model = build_model("resnext", num_classes=10, depth=11, cardinality=8, base_width=4)
    first = model.stages[0][0].branch
    assert first.conv2.groups == 8 and first.conv2.in_channels == 8 * 4  # C x d of the first stage
    assert [s[0].branch.out_chans for s in model.stages] == [256, 512, 1024]
    assert model.stem.conv1.weight.shape == (64, 3, 3, 3)
