"""DenseNet-BC (arXiv 1608.06993): torchvision's DenseNet-121 exactly, CIFAR DenseNet-BC-100 size, no shortcut."""

import pytest
import torch
import torchvision

from resblocks import ConfigError, build_model


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_densenet121_equals_torchvision_with_its_weights() -> None:
    torch.manual_seed(0)
    ref = torchvision.models.densenet121()
    mine = build_model("densenet121", num_classes=1000)
    assert n_params(mine) == 7_978_856
    mine.load_state_dict(ref.state_dict(), strict=True)  # same module names
    x = torch.randn(3, 3, 32, 32)  # small but every stage keeps >= 1 pixel
    for train in (True, False):
        mine.train(train), ref.train(train)
        assert (mine(x) - ref(x)).abs().max().item() <= 1e-5


def test_cifar_densenet_bc_100_12() -> None:
    with torch.device("meta"):
        model = build_model("densenet_bc_100_12", num_classes=10)
    assert n_params(model) == pytest.approx(0.8e6, abs=0.05e6)  # Table 2 reports 0.8M
    blocks = [m for n, m in model.features.named_children() if n.startswith("denseblock")]
    assert [len(b) for b in blocks] == [16, 16, 16]
    assert model.features.conv0.out_channels == 24  # 2k filters before the first dense block


def test_concatenation_grows_channels_and_compression_halves_them() -> None:
    model = build_model(
        "densenet", num_classes=3, block_config=(2, 2), growth_rate=4, num_init_features=8, stem="cifar"
    )
    block = model.features.denseblock1
    x = torch.randn(1, 8, 6, 6)
    y = block(x)
    assert y.shape[1] == 8 + 2 * 4 and torch.equal(y[:, :8], x)  # the input is carried by concatenation, unchanged
    assert model.features.transition1.conv.out_channels == 8


def test_shortcut_must_be_none() -> None:
    build_model("densenet_bc_100_12", num_classes=10, shortcut=None)
    with pytest.raises(ConfigError, match="^shortcut: 'laurel_rw': DenseNet concatenates"):
        build_model("densenet121", num_classes=10, shortcut="laurel_rw")
