import pytest
import torch
import torch.nn.functional as F
from torch import nn

from resblocks import ConfigError, Residual, Site, shortcut_factory
from resblocks.branches.mlp import Mlp


def test_equation_written_out() -> None:
    torch.manual_seed(0)
    mlp = Mlp(8, 32)
    x = torch.randn(2, 5, 8)
    ref = F.linear(F.gelu(F.linear(x, mlp.fc1.weight, mlp.fc1.bias)), mlp.fc2.weight, mlp.fc2.bias)
    assert torch.allclose(mlp(x), ref, atol=1e-6)


def test_act_layer_and_bias_are_injected() -> None:
    mlp = Mlp(8, 16, act_layer=nn.ReLU, bias=False)
    assert isinstance(mlp.act, nn.ReLU)
    assert mlp.fc1.bias is None and mlp.fc2.bias is None
    x = torch.randn(3, 8)
    assert torch.allclose(mlp(x), F.relu(x @ mlp.fc1.weight.T) @ mlp.fc2.weight.T, atol=1e-6)


def test_dropout_only_in_training() -> None:
    mlp = Mlp(8, 16, dropout=0.5)
    x = torch.randn(4, 8)
    assert torch.equal(mlp.eval()(x), mlp(x))
    assert not torch.allclose(mlp.train()(x), mlp(x))


def test_deepnorm_init_scales_both_weights() -> None:
    mlp = Mlp(8, 16)
    w1, w2, b1 = mlp.fc1.weight.clone(), mlp.fc2.weight.clone(), mlp.fc1.bias.clone()
    mlp.deepnorm_init_(0.5)
    assert torch.allclose(mlp.fc1.weight, 0.5 * w1) and torch.allclose(mlp.fc2.weight, 0.5 * w2)
    assert torch.equal(mlp.fc1.bias, b1)


def test_zero_init_last_zeroes_the_output_and_refuses_rezero() -> None:
    mlp = Mlp(8, 16, zero_init_last=True)
    assert torch.equal(mlp(torch.randn(2, 8)), torch.zeros(2, 8))
    assert mlp.output_layer() is mlp.fc2
    with pytest.raises(ConfigError, match="zero_init_last"):
        Residual(mlp, shortcut_factory("rezero")(Site(8)))
