"""deepnorm: alpha x + F(x) inside Post-LN, branch init scaled by beta (Wang et al. 2022, arXiv 2203.00555)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from resblocks import ConfigError, Residual


class FakeAttention(nn.Module):
    """Implements the branch side of the protocol as torchscale does: scale v and out, never q or k."""

    def __init__(self, dim: int = 32) -> None:
        super().__init__()
        self.q, self.k, self.v, self.out = (nn.Linear(dim, dim) for _ in range(4))

    def deepnorm_init_(self, beta: float) -> None:
        with torch.no_grad():
            for layer in (self.v, self.out):
                layer.weight.mul_(beta)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.v(x))


def test_constants_for_six_layers(make) -> None:
    rule = make("deepnorm", total=12, per_block=2)  # 6 Transformer layers = 12 residual sub-layers
    assert float(rule.alpha) == pytest.approx(12**0.25) == pytest.approx(1.8612097)
    assert rule.beta == pytest.approx(48**-0.25) == pytest.approx(0.3799178)
    assert list(rule.parameters()) == [] and rule.requires_norm == "post_ln"


def test_equation_and_overrides(make, rand) -> None:
    rule = make("deepnorm", total=12, per_block=2, alpha=3.0, beta=0.5)
    fx, x = rand("token"), rand("token")
    torch.testing.assert_close(rule(fx, x), 3.0 * x + fx)
    assert rule.beta == 0.5


def test_init_branch_scales_value_and_output_only(make) -> None:
    branch = FakeAttention()
    before = {n: p.detach().clone() for n, p in branch.named_parameters()}
    rule = make("deepnorm", total=12, per_block=2)
    Residual(branch, rule)  # the wrapper calls rule.init_branch(branch)
    for name in ("v.weight", "out.weight"):
        torch.testing.assert_close(branch.get_parameter(name), before[name] * 48**-0.25)
    for name in ("q.weight", "k.weight", "q.bias", "v.bias"):
        assert torch.equal(branch.get_parameter(name), before[name])


def test_branch_without_protocol(make) -> None:
    with pytest.raises(ConfigError, match=r"^shortcut: deepnorm needs a branch with deepnorm_init_\(beta\); Linear"):
        Residual(nn.Linear(32, 32), make("deepnorm", total=12, per_block=2))


def test_image_layout_refused(make) -> None:
    with pytest.raises(ConfigError, match=r"^shortcut: 'deepnorm' does not support image layout"):
        make("deepnorm", "image")


@pytest.mark.parametrize("key", ["alpha", "beta"])
def test_bad_override(key: str, make) -> None:
    with pytest.raises(ConfigError, match=rf"^shortcut\.{key}: -1\.0"):
        make("deepnorm", **{key: -1.0})
