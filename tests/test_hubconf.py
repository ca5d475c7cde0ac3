"""torch.hub: ``hubconf.py`` at the repository root, loaded with ``source="local"`` as a user would."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

import resblocks

ROOT = Path(__file__).resolve().parents[1]


def test_load_a_named_model() -> None:
    torch.manual_seed(0)
    net = torch.hub.load(str(ROOT), "cifar_resnet56", source="local", shortcut="laurel_rw", num_classes=10)
    torch.manual_seed(0)
    ref = resblocks.build_model("cifar_resnet56", shortcut="laurel_rw", num_classes=10)
    assert type(net) is type(ref)
    x = torch.randn(2, 3, 32, 32)
    net.eval(), ref.eval()
    torch.testing.assert_close(net(x), ref(x), rtol=0, atol=0)
    assert type(net.stages[0][0].shortcut).__name__ == "LaurelRW"


def test_generic_entry_and_errors() -> None:
    vit = torch.hub.load(str(ROOT), "model", "vit_fmnist", source="local", num_classes=10, depth=2)
    assert vit(torch.randn(1, 1, 28, 28)).shape == (1, 10)
    with pytest.raises(resblocks.ConfigError, match=r"^model\.num_classes: missing"):
        torch.hub.load(str(ROOT), "cifar_resnet20", source="local")
    with pytest.raises(resblocks.ConfigError, match=r"^pretrained: resblocks ships no pretrained weights"):
        torch.hub.load(str(ROOT), "resnet50", source="local", pretrained=True)


def test_one_entry_per_registered_model() -> None:
    spec = importlib.util.spec_from_file_location("hubconf", ROOT / "hubconf.py")
    hub = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hub)
    assert hub.dependencies == ["torch"]
    entries = {n for n in dir(hub) if callable(getattr(hub, n)) and not n.startswith("_")}  # what torch.hub.list shows
    assert entries == set(resblocks.list_models()) | {"model"}
    assert "num_classes, in_chans=3, shortcut='identity'" in hub.cifar_resnet56.__doc__
