"""projection: F(x) + P x with a learned channel projection (He et al. 2016, option C)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def test_token_equation(make, rand) -> None:
    rule = make("projection", "token")
    nn.init.normal_(rule.proj.weight)
    fx, x = rand("token"), rand("token")
    torch.testing.assert_close(rule(fx, x), fx + x @ rule.proj.weight.T)
    assert sum(p.numel() for p in rule.parameters()) == rule.site.dim**2  # Linear without bias


def test_image_equation_conv1x1_then_batchnorm(make, rand) -> None:
    rule = make("projection", "image")
    with torch.no_grad():
        rule.norm.weight.uniform_(0.5, 2.0)
        rule.norm.bias.normal_()
    fx, x = rand("image"), rand("image")
    w = rule.proj.weight[:, :, 0, 0]
    y = torch.einsum("oc,bchw->bohw", w, x)
    mean, var = y.mean((0, 2, 3), keepdim=True), y.var((0, 2, 3), unbiased=False, keepdim=True)
    bn = (y - mean) / torch.sqrt(var + rule.norm.eps) * rule.norm.weight.view(1, -1, 1, 1) + rule.norm.bias.view(
        1, -1, 1, 1
    )
    torch.testing.assert_close(rule(fx, x), fx + bn)
    assert isinstance(rule.norm, nn.BatchNorm2d) and rule.proj.bias is None
    rule.eval()  # running statistics in eval mode, as any BN
    torch.testing.assert_close(rule(fx, x), fx + rule.norm(F.conv2d(x, rule.proj.weight)))
