"""laurel_pa: F(x) + x + sum_{j<k} gamma_j h(x_{i-j}) (Menghani et al. 2024, arXiv 2411.07501, eq. 4)."""

from __future__ import annotations

import pytest
import torch

from resblocks import ConfigError
from resblocks.shortcuts import ActivationHistory, Site, shortcut_factory


def random_gamma(rule) -> torch.Tensor:
    with torch.no_grad():
        rule.previous.gamma.normal_()
    return rule.previous.gamma.detach()


def test_equation_identity_h_uses_k_same_shape_lags(layout: str, make, rand) -> None:
    history = ActivationHistory()
    rule = make("laurel_pa", layout, history=history, k=3)
    g = random_gamma(rule)
    other = rand(layout, dim=16)  # an earlier stage: different shape
    b1, b2, b3, b4 = (rand(layout) for _ in range(4))
    for a in (b1, other, b2, b3, b4):
        history.push(a)
    fx, x = rand(layout), rand(layout)
    out = rule(fx, x)
    torch.testing.assert_close(out, fx + x + g[0] * x + g[1] * b4 + g[2] * b3)  # exactly k = 3 lags, x first
    assert history.recent(10, like=x)[0] is x  # the rule pushed its input


def test_lags_stop_at_a_different_shape(layout: str, make, rand) -> None:
    history = ActivationHistory()
    rule = make("laurel_pa", layout, history=history, k=3)
    g = random_gamma(rule)
    b1, other, b2 = rand(layout), rand(layout, dim=16), rand(layout)
    for a in (b1, other, b2):
        history.push(a)
    fx, x = rand(layout), rand(layout)
    out = rule(fx, x)
    torch.testing.assert_close(out, fx + x + g[0] * x + g[1] * b2)  # b1 sits behind the other stage
    out.sum().backward()
    assert rule.previous.gamma.grad[2] == 0


def test_without_history_only_x(layout: str, make, rand) -> None:
    rule = make("laurel_pa", layout)
    g = random_gamma(rule)
    fx, x = rand(layout), rand(layout)
    torch.testing.assert_close(rule(fx, x), fx + x + g[0] * x)


def test_history_keeps_at_least_k() -> None:
    history = ActivationHistory(maxlen=2)
    shortcut_factory("laurel_pa", k=5)(Site(dim=8, history=history))
    assert history.maxlen == 5


def test_equation_low_rank_h(layout: str, make, rand, to_last) -> None:
    history = ActivationHistory()
    rule = make("laurel_pa", layout, history=history, k=2, rank=4)
    assert torch.equal(rule.previous.gamma, torch.ones(2))  # gamma 1, up 0: one zero factor only
    with torch.no_grad():
        rule.previous.h.up.normal_()
    g = random_gamma(rule)
    prev = rand(layout)
    history.push(prev)
    fx, x = rand(layout), rand(layout)
    down, up = rule.previous.h.down, rule.previous.h.up
    lags = [to_last(x, layout), to_last(prev, layout)]
    expected = to_last(fx, layout) + lags[0] + sum(g[j] * lags[j] @ down[j].T @ up[j].T for j in range(2))
    torch.testing.assert_close(to_last(rule(fx, x), layout), expected)


@pytest.mark.parametrize("k", [0, -1])
def test_bad_k(k: int, make) -> None:
    with pytest.raises(ConfigError, match=rf"^shortcut\.k: {k}; valid: an integer >= 1"):
        make("laurel_pa", k=k)
