"""laurel_lr: F(x) + x + up(down(x)) (Menghani et al. 2024, arXiv 2411.07501, eq. 3)."""

from __future__ import annotations

import math

import pytest
import torch

from resblocks import ConfigError


def test_equation(layout: str, make, rand, to_last) -> None:
    rule = make("laurel_lr", layout, rank=4)
    with torch.no_grad():
        rule.low_rank.up.normal_()
    down, up = rule.low_rank.down[0], rule.low_rank.up[0]  # [r, D], [D, r]
    assert down.shape == (4, 32) and up.shape == (32, 4)
    fx, x = rand(layout), rand(layout)
    xl = to_last(x, layout)
    expected = to_last(fx, layout) + xl + xl @ down.T @ up.T
    torch.testing.assert_close(to_last(rule(fx, x), layout), expected)
    assert sum(p.numel() for p in rule.parameters()) == 2 * 4 * 32  # 2rD


def test_init_xavier_and_zero_up(make) -> None:
    rule = make("laurel_lr", rank=8)
    down = rule.low_rank.down[0]
    bound = math.sqrt(6 / (8 + 32))
    assert down.abs().max() <= bound and down.std() > bound / 3  # U(-b, b), fans of [r, D]
    assert not rule.low_rank.up.any()


def test_init_column_orthogonal(make) -> None:
    r, d = 4, 32
    down = make("laurel_lr", rank=r, init="column_orthogonal").low_rank.down[0]  # [r, D] = A^T
    a = torch.tensor([[1 / math.sqrt(r * d) if i % r == j else 0.0 for j in range(r)] for i in range(d)])
    torch.testing.assert_close(down.T, a)


@pytest.mark.parametrize(
    ("options", "pattern"),
    [
        ({"rank": 33}, r"^shortcut\.rank: 33 with width 32; valid: 1 <= rank <= 32$"),
        ({"rank": 0}, r"^shortcut\.rank: 0 "),
        ({"init": "orthogonal"}, r"^shortcut\.init: 'orthogonal'; valid: xavier, column_orthogonal$"),
    ],
)
def test_bad_options(options: dict, pattern: str, make) -> None:
    with pytest.raises(ConfigError, match=pattern):
        make("laurel_lr", **options)
