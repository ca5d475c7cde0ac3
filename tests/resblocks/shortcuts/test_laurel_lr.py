"""laurel_lr: F(x) + x + up(down(x)) (Menghani et al. 2024, arXiv 2411.07501, eq. 3)."""

from __future__ import annotations

import math

import pytest
import torch

from resblocks import ConfigError


@pytest.mark.parametrize("rank", [4, 16])  # 2r < D: two thin matmuls; 2r >= D: the D x D product up @ down
def test_equation_and_gradients(rank: int, layout: str, make, rand, to_last) -> None:
    rule = make("laurel_lr", layout, rank=rank)
    assert rule.low_rank.merged == (rank == 16)
    with torch.no_grad():
        rule.low_rank.up.normal_()
    down, up = rule.low_rank.down[0], rule.low_rank.up[0]  # [r, D], [D, r]
    assert down.shape == (rank, 32) and up.shape == (32, rank)
    fx, x = rand(layout).requires_grad_(), rand(layout).requires_grad_()
    xl = to_last(x, layout)
    expected = to_last(fx, layout) + xl + xl @ down.T @ up.T
    out = to_last(rule(fx, x), layout)
    torch.testing.assert_close(out, expected)
    grad = torch.randn_like(out)
    inputs = (fx, x, rule.low_rank.down, rule.low_rank.up)
    torch.testing.assert_close(torch.autograd.grad(out, inputs, grad), torch.autograd.grad(expected, inputs, grad))
    assert sum(p.numel() for p in rule.parameters()) == 2 * rank * 32  # 2rD


@pytest.mark.parametrize("rank", [4, 16])
def test_autocast_keeps_the_fp32_stream(rank: int, layout: str, make, rand) -> None:
    rule = make("laurel_lr", layout, rank=rank)  # up = 0: the low-rank term is exactly 0
    fx, x = rand(layout).bfloat16(), rand(layout)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = rule(fx, x)
    # The bf16 matmul must not accumulate onto the fp32 stream (that would round it to bf16).
    assert out.dtype == torch.float32 and torch.equal(out, fx.float() + x)


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
