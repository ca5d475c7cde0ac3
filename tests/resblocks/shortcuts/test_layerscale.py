"""layerscale: x + diag(lambda) F(x) (Touvron et al. 2021, CaiT, arXiv 2103.17239)."""

from __future__ import annotations

import pytest
import torch

from resblocks import ConfigError
from resblocks.schedules import layerscale_init


def test_equation_per_channel(layout: str, make, rand, to_last) -> None:
    rule = make("layerscale", layout, init_values=0.5)
    with torch.no_grad():
        rule.ls.scale.uniform_(-1.0, 1.0)
    fx, x = rand(layout), rand(layout)
    expected = to_last(x, layout) + rule.ls.scale * to_last(fx, layout)
    torch.testing.assert_close(to_last(rule(fx, x), layout), expected)


@pytest.mark.parametrize(("blocks", "eps"), [(1, 0.1), (12, 0.1), (18, 0.1), (20, 1e-5), (24, 1e-5), (36, 1e-6)])
def test_cait_init_by_depth(blocks: int, eps: float, make) -> None:
    assert layerscale_init(blocks) == eps
    tok = make("layerscale", "token", total=2 * blocks, per_block=2)  # 2 sub-layers per Transformer block
    img = make("layerscale", "image", total=blocks)  # 1 residual per conv block
    assert torch.equal(tok.ls.scale, torch.full((32,), eps)) and torch.equal(img.ls.scale, tok.ls.scale)


def test_float_override(make) -> None:
    assert torch.equal(make("layerscale", total=100, init_values=1e-4).ls.scale, torch.full((32,), 1e-4))


def test_bad_init_values(make) -> None:
    with pytest.raises(ConfigError, match=r"^shortcut\.init_values: 0\.0"):
        make("layerscale", init_values=0.0)
