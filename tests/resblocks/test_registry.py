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


def test_missing_required_option_names_it() -> None:
    reg: Registry = Registry("widget", reserved=("site",))

    @reg.register("need")
    def need(site: int, width: int, *, classes: int, bias: bool = True) -> tuple:
        return site, width, classes, bias

    assert reg.build("need", 0, 4, classes=2) == (0, 4, 2, True)  # positional arguments count as given
    assert reg.build("need", 0, width=4, classes=2) == (0, 4, 2, True)
    with pytest.raises(ConfigError, match=r"^widget\.classes: missing \(required by widget 'need'\); valid: classes=<int>$"):
        reg.build("need", 0, 4)
    with pytest.raises(ConfigError, match=r"^widget\.width: missing"):
        reg.build("need", 0, classes=2)
    with pytest.raises(TypeError):  # a reserved argument is the framework's: its absence is not a user error
        reg.build("need", width=4, classes=2)


def test_build_model_without_num_classes_is_a_config_error() -> None:
    import resblocks

    with pytest.raises(ConfigError, match=r"^model\.num_classes: missing \(required by model 'cifar_resnet56'\)"):
        resblocks.build_model("cifar_resnet56", shortcut="laurel_rw")
    with pytest.raises(ConfigError, match=r"^model\.vocab_size: missing \(required by model 'gpt_nano'\)"):
        resblocks.build_model("gpt_nano")
