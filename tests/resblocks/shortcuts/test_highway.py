"""highway: T F(x) + (1 - T) x, T = sigmoid(W_T x + b_T) (Srivastava et al. 2015, arXiv 1505.00387)."""

from __future__ import annotations

import torch
from torch import nn


def test_equation(layout: str, make, rand, to_last) -> None:
    rule = make("highway", layout)
    nn.init.normal_(rule.gate.bias)
    fx, x = rand(layout), rand(layout)
    w = rule.gate.weight.reshape(rule.site.dim, rule.site.dim)
    t = torch.sigmoid(to_last(x, layout) @ w.T + rule.gate.bias)
    expected = t * to_last(fx, layout) + (1 - t) * to_last(x, layout)
    torch.testing.assert_close(to_last(rule(fx, x), layout), expected)


def test_gate_bias_init(make) -> None:
    assert torch.equal(make("highway").gate.bias, torch.full((32,), -2.0))
    assert torch.equal(make("highway", gate_bias=-3.0).gate.bias, torch.full((32,), -3.0))


def test_closed_gate_carries_x_open_gate_gives_fx(layout: str, make, rand) -> None:
    fx, x = rand(layout), rand(layout)
    torch.testing.assert_close(make("highway", layout, gate_bias=-50.0)(fx, x), x, rtol=0, atol=1e-6)
    torch.testing.assert_close(make("highway", layout, gate_bias=50.0)(fx, x), fx, rtol=0, atol=1e-6)
