"""laurel_pa: F(x) + x + sum_{j<k} gamma_j h(x_{i-j}) (Menghani et al. 2024, arXiv 2411.07501, eq. 4)."""

from __future__ import annotations

import pytest
import torch

from resblocks import ConfigError
from resblocks.shortcuts import previous_activations


def random_gamma(rule) -> torch.Tensor:
    with torch.no_grad():
        rule.previous.gamma.normal_()
    return rule.previous.gamma.detach()


def test_equation_identity_h_uses_k_lags(layout: str, make, rand) -> None:
    rule = make("laurel_pa", layout, k=3)
    assert rule.num_previous == 2  # x_i itself is the first of the k lags
    g = random_gamma(rule)
    b4, b3, b2 = (rand(layout) for _ in range(3))  # newest first
    fx, x = rand(layout), rand(layout)
    out = rule(fx, x, [b4, b3, b2])
    torch.testing.assert_close(out, fx + x + g[0] * x + g[1] * b4 + g[2] * b3)  # exactly k = 3 lags, x first


def test_fewer_lags_use_the_first_gammas(layout: str, make, rand) -> None:
    rule = make("laurel_pa", layout, k=3)
    g = random_gamma(rule)
    b = rand(layout)
    fx, x = rand(layout), rand(layout)
    out = rule(fx, x, [b])
    torch.testing.assert_close(out, fx + x + g[0] * x + g[1] * b)
    out.sum().backward()
    assert rule.previous.gamma.grad[2] == 0


def test_without_previous_only_x(layout: str, make, rand) -> None:
    rule = make("laurel_pa", layout)
    g = random_gamma(rule)
    fx, x = rand(layout), rand(layout)
    torch.testing.assert_close(rule(fx, x), fx + x + g[0] * x)


def test_previous_activations_newest_first_same_shape_only() -> None:
    a, b, c, d = (torch.randn(2, 4) for _ in range(4))
    other = torch.randn(2, 8)  # an earlier stage
    hiddens = {0: a, 1: other, 2: b, 3: c, 4: d}
    like = torch.randn(2, 4)
    assert [t is u for t, u in zip(previous_activations(hiddens, 5, like, 2), (d, c))] == [True, True]
    got = previous_activations(hiddens, 5, like, 10)
    assert len(got) == 3 and all(t is u for t, u in zip(got, (d, c, b)))  # stops at the other stage
    assert previous_activations(hiddens, 0, like, 3) == []  # nothing before the first sub-layer
    assert previous_activations(None, 4, like, 3) == []  # a block used alone
    assert previous_activations({0: a}, 2, like, 3) == []  # a missing entry stops the lags


def test_equation_low_rank_h(layout: str, make, rand, to_last) -> None:
    rule = make("laurel_pa", layout, k=2, rank=4)
    assert torch.equal(rule.previous.gamma, torch.ones(2))  # gamma 1, up 0: one zero factor only
    with torch.no_grad():
        rule.previous.h.up.normal_()
    g = random_gamma(rule)
    prev = rand(layout)
    fx, x = rand(layout), rand(layout)
    down, up = rule.previous.h.down, rule.previous.h.up
    lags = [to_last(x, layout), to_last(prev, layout)]
    expected = to_last(fx, layout) + lags[0] + sum(g[j] * lags[j] @ down[j].T @ up[j].T for j in range(2))
    torch.testing.assert_close(to_last(rule(fx, x, [prev]), layout), expected)


@pytest.mark.parametrize("k", [0, -1])
def test_bad_k(k: int, make) -> None:
    with pytest.raises(ConfigError, match=rf"^shortcut\.k: {k}; valid: an integer >= 1"):
        make("laurel_pa", k=k)
