"""laurel_rw: alpha F(x) + beta x (Menghani et al. 2024, arXiv 2411.07501, Sec. 2.1)."""

from __future__ import annotations

import pytest
import torch

from resblocks import ConfigError


def test_default_is_the_plain_residual(layout: str, make, rand) -> None:
    fx, x = rand(layout), rand(layout)
    assert torch.equal(make("laurel_rw", layout)(fx, x), fx + x)


def test_equation_unnormalised(layout: str, make, rand) -> None:
    rule = make("laurel_rw", layout, init_alpha=0.3, init_beta=1.7)
    fx, x = rand(layout), rand(layout)
    torch.testing.assert_close(rule(fx, x), 0.3 * fx + 1.7 * x)


def test_equation_softmax(layout: str, make, rand) -> None:
    rule = make("laurel_rw", layout, norm="softmax")
    with torch.no_grad():
        rule.weights.alpha_logit.fill_(0.4)
        rule.weights.beta_logit.fill_(-1.1)
    fx, x = rand(layout), rand(layout)
    a = torch.exp(torch.tensor(0.4)) / (torch.exp(torch.tensor(0.4)) + torch.exp(torch.tensor(-1.1)))
    torch.testing.assert_close(rule(fx, x), a * fx + (1 - a) * x)


def test_equation_sigmoid(layout: str, make, rand) -> None:
    rule = make("laurel_rw", layout, norm="sigmoid")
    assert [n for n, _ in rule.named_parameters()] == ["weights.alpha_logit"]  # one parameter
    with torch.no_grad():
        rule.weights.alpha_logit.fill_(0.8)
    fx, x = rand(layout), rand(layout)
    a = 1 / (1 + torch.exp(torch.tensor(-0.8)))
    torch.testing.assert_close(rule(fx, x), a * fx + (1 - a) * x)


@pytest.mark.parametrize("norm", ["softmax", "sigmoid"])
def test_normalised_weights_sum_to_one(norm: str, make, rand, sgd_step) -> None:
    rule = make("laurel_rw", norm=norm, per_channel=True)
    alpha, beta = rule.weights.weights()
    assert torch.equal(alpha, torch.full((32,), 0.5)) and torch.equal(beta, alpha)  # the EMA-like default
    for _ in range(3):
        sgd_step(rule, rule(rand("token"), rand("token")), lr=1.0)
        alpha, beta = rule.weights.weights()
        torch.testing.assert_close(alpha + beta, torch.ones(32))
        assert not torch.equal(alpha, beta)


@pytest.mark.parametrize("norm", ["softmax", "sigmoid"])
def test_one_init_sets_its_complement(norm: str, make) -> None:
    alpha, beta = make("laurel_rw", norm=norm, init_alpha=0.7).weights.weights()
    torch.testing.assert_close((alpha, beta), (torch.tensor(0.7), torch.tensor(0.3)))
    alpha, beta = make("laurel_rw", norm=norm, init_beta=0.9).weights.weights()
    torch.testing.assert_close((alpha, beta), (torch.tensor(0.1), torch.tensor(0.9)))


def test_per_channel_equation(layout: str, make, rand, to_last) -> None:
    rule = make("laurel_rw", layout, per_channel=True)
    with torch.no_grad():
        rule.weights.alpha.normal_()
        rule.weights.beta.normal_()
    fx, x = rand(layout), rand(layout)
    expected = rule.weights.alpha * to_last(fx, layout) + rule.weights.beta * to_last(x, layout)
    torch.testing.assert_close(to_last(rule(fx, x), layout), expected)


@pytest.mark.parametrize(
    ("options", "pattern"),
    [
        ({"norm": "softmx"}, r"^shortcut\.norm: 'softmx'; valid: none, softmax, sigmoid$"),
        ({"norm": "softmax", "init_alpha": 0.7, "init_beta": 0.7}, r"^shortcut\.init_alpha: .*sum"),
        ({"norm": "sigmoid", "init_alpha": 1.0}, r"^shortcut\.init_alpha: .*both > 0"),
        ({"norm": "softmax", "init_alpha": -0.5, "init_beta": 1.5}, r"^shortcut\.init_alpha: "),
    ],
)
def test_bad_options(options: dict, pattern: str, make) -> None:
    with pytest.raises(ConfigError, match=pattern):
        make("laurel_rw", **options)
