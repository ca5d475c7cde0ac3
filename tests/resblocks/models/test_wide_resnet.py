"""Wide ResNets (arXiv 1605.07146): sizes of WRN-28-10 / 40-4 / 16-8, dropout between the convs, widths."""

import pytest
import torch
from torch import nn

from resblocks import build_model


def n_params(name: str, **options) -> int:
    with torch.device("meta"):
        return sum(p.numel() for p in build_model(name, **options).parameters())


@pytest.mark.parametrize("name, paper", [("wrn_28_10", 36.5e6), ("wrn_40_4", 8.9e6), ("wrn_16_8", 11.0e6)])
def test_param_counts(name: str, paper: float) -> None:
    assert n_params(name, num_classes=10) == pytest.approx(paper, rel=0.02)


def test_widths_dropout_and_first_projection() -> None:
    model = build_model("wide_resnet", num_classes=10, depth=16, widen_factor=2, dropout=0.3)
    assert [s[0].branch.out_chans for s in model.stages] == [32, 64, 128]
    assert isinstance(model.stages[0][0].downsample[0], nn.Conv2d)  # 16 -> 16k channels needs a projection
    drops = [m for m in model.modules() if isinstance(m, nn.Dropout)]
    assert len(drops) == 6 and all(d.p == 0.3 for d in drops)  # one per block
    assert not any(isinstance(m, nn.Dropout) for m in build_model("wrn_16_8", num_classes=10).modules())
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def test_bad_options() -> None:
    from resblocks import ConfigError

    with pytest.raises(ConfigError, match=r"^dropout: 1.5; valid: \[0, 1\)$"):
        build_model("wide_resnet", num_classes=10, depth=10, dropout=1.5)
    with pytest.raises(ConfigError, match=r"^depth: 30; valid: 6n\+4"):
        build_model("wide_resnet", num_classes=10, depth=30)
