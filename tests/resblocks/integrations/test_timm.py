import pytest
import torch

timm = pytest.importorskip("timm")

import resblocks  # noqa: E402
import resblocks.integrations.timm as bridge  # noqa: E402  (registers the models with timm)


def test_every_model_is_listed_by_timm() -> None:
    listed = set(timm.list_models("resblocks_*"))
    assert listed == {f"resblocks_{n}" for n in resblocks.list_models()}
    assert set(bridge.TIMM_NAMES) == listed


def test_create_model_passes_options_through() -> None:
    torch.manual_seed(0)
    model = timm.create_model("resblocks_cifar_resnet20", num_classes=7, in_chans=1, shortcut="laurel_rw")
    torch.manual_seed(0)
    ref = resblocks.build_model("cifar_resnet20", num_classes=7, in_chans=1, shortcut="laurel_rw")
    x = torch.randn(2, 1, 28, 28)
    model.eval(), ref.eval()
    torch.testing.assert_close(model(x), ref(x))
    assert model(x).shape == (2, 7)


def test_pretrained_and_unknown_options_are_refused() -> None:
    with pytest.raises(resblocks.ConfigError, match="pretrained"):
        timm.create_model("resblocks_cifar_resnet20", pretrained=True, num_classes=10)
    with pytest.raises(resblocks.ConfigError, match="valid options"):
        timm.create_model("resblocks_cifar_resnet20", num_classes=10, widht=3)
