"""ImageNet ResNets: torchvision's exact parameter counts and outputs with its weights loaded (train and eval)."""

import pytest
import torch
import torchvision

from resblocks import build_model
from resblocks.models.resnet_imagenet import from_torchvision


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_resnet50_has_torchvisions_parameter_count() -> None:
    with torch.device("meta"):
        assert n_params(build_model("resnet50", num_classes=1000)) == 25_557_032


@pytest.mark.parametrize(
    "name", ["resnet18", "resnet34", "resnet101", "resnet152", "resnext101_32x8d", "wide_resnet50_2"]
)
def test_counts_equal_torchvision(name: str) -> None:
    with torch.device("meta"):
        assert n_params(build_model(name, num_classes=1000)) == n_params(getattr(torchvision.models, name)())


@pytest.mark.parametrize("name", ["resnet18", "resnet50", "resnext50_32x4d"])
def test_equals_torchvision_with_its_weights(name: str) -> None:
    torch.manual_seed(0)
    ref = getattr(torchvision.models, name)()
    mine = build_model(name, num_classes=1000)
    mine.load_state_dict(from_torchvision(ref.state_dict()), strict=True)
    x = torch.randn(3, 3, 32, 32)  # small but every stage keeps >= 1 pixel
    for train in (True, False):
        mine.train(train), ref.train(train)
        assert (mine(x) - ref(x)).abs().max().item() <= 1e-5


def test_from_torchvision_with_a_learned_rule_leaves_only_the_rules_parameters_missing() -> None:
    ref = torchvision.models.resnet18()
    mine = build_model("resnet18", num_classes=1000, shortcut="projection")
    missing, unexpected = mine.load_state_dict(from_torchvision(ref.state_dict()), strict=False)
    assert not unexpected and missing and all(".shortcut." in k for k in missing)
