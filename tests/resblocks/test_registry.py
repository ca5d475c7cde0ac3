import pytest
from torch import nn

from resblocks import ConfigError
from resblocks.registry import Registry


def make_registry() -> Registry:
    reg: Registry = Registry("widget", reserved=("site",))

    @reg.register("lin")
    class Lin(nn.Linear):
        def __init__(self, site: int = 0, *, width: int = 4, bias: bool = True) -> None:
            super().__init__(width, width, bias=bias)

    return reg


def test_build_and_options() -> None:
    reg = make_registry()
    assert reg.names() == ["lin"]
    assert reg.options("lin") == {"width": 4, "bias": True}  # reserved 'site' is hidden
    m = reg.build("lin", width=3)
    assert m.weight.shape == (3, 3)


def test_unknown_name_lists_valid_choices() -> None:
    with pytest.raises(ConfigError, match=r"^widget: unknown name 'lni'; valid: lin$"):
        make_registry().get("lni")


def test_unknown_option_lists_valid_options() -> None:
    with pytest.raises(ConfigError, match=r"widget\.wdth: unknown option .* valid options: bias, width"):
        make_registry().build("lin", wdth=3)


def test_duplicate_registration_refused() -> None:
    reg = make_registry()
    with pytest.raises(ConfigError, match="registered twice"):
        reg.register("lin")(nn.Identity)
