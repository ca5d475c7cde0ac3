"""rezero: x + alpha F(x), alpha init 0 (Bachlechner et al. 2020, arXiv 2003.04887)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from resblocks import ConfigError, Residual


def test_starts_at_x_and_gate_gets_gradient(layout: str, make, rand) -> None:
    rule = make("rezero", layout)
    fx, x = rand(layout), rand(layout)
    out = rule(fx, x)
    assert torch.equal(out, x)
    (out * torch.randn_like(out)).sum().backward()
    assert rule.alpha.grad is not None and rule.alpha.grad.abs() > 0


def test_equation(layout: str, make, rand) -> None:
    rule = make("rezero", layout, init=0.3)
    fx, x = rand(layout), rand(layout)
    torch.testing.assert_close(rule(fx, x), x + 0.3 * fx)
    assert rule.alpha.shape == ()


def test_zero_gate_flag_follows_init(make) -> None:
    assert make("rezero").gates_branch_at_zero is True
    assert make("rezero", init=0.1).gates_branch_at_zero is False


def test_residual_refuses_two_zero_inits(make) -> None:
    branch = nn.Linear(32, 32)
    branch.zero_init_last = True  # type: ignore[assignment]
    with pytest.raises(ConfigError, match="zero_init_last"):
        Residual(branch, make("rezero"))
    Residual(branch, make("rezero", init=0.1))  # a non-zero gate is fine
