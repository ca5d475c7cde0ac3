"""identity: F(x) + x; none: F(x) (He et al. 2016)."""

from __future__ import annotations

import torch


def test_identity_adds(layout: str, make, rand) -> None:
    fx, x = rand(layout), rand(layout)
    assert torch.equal(make("identity", layout)(fx, x), fx + x)


def test_none_ignores_the_stream(layout: str, make, rand) -> None:
    fx, x = rand(layout).requires_grad_(), rand(layout).requires_grad_()
    out = make("none", layout)(fx, x)
    assert torch.equal(out, fx)
    gx, gfx = torch.autograd.grad((out * torch.randn_like(out)).sum(), (x, fx), allow_unused=True)
    assert gx is None or not gx.any()
    assert gfx is not None and gfx.abs().sum() > 0
