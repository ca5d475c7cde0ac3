"""Every rule runs under bf16 autocast, where blocks hand it a bf16 branch output and an fp32 stream."""

from __future__ import annotations

import pytest
import torch

from resblocks.shortcuts import SHORTCUTS

from .conftest import merge

CASES = [(name, layout) for name in SHORTCUTS.names() for layout in SHORTCUTS.get(name).layouts]


@pytest.mark.parametrize(("name", "layout"), CASES)
def test_bf16_branch_fp32_stream(name: str, layout: str, make, rand) -> None:
    rule = make(name, layout, index=1, total=4)
    prev = [rand(layout)]  # an earlier same-shape activation for PA's lags
    fx = rand(layout).bfloat16().requires_grad_()  # a Linear/conv output under autocast
    x = rand(layout).requires_grad_()  # the residual stream stays fp32
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = merge(rule, fx, x, prev)
    assert out.shape == x.shape and torch.isfinite(out).all()
    # fp32 where x itself is carried (fx + x promotes); bf16 where x goes through a channel map first (projection)
    # or is not carried at all (none).
    assert out.dtype in (torch.float32, torch.bfloat16)
    if name in ("identity", "decayed", "laurel_rw", "laurel_pa", "highway"):
        assert out.dtype == torch.float32
    out.float().square().mean().backward()
    assert fx.grad is not None and fx.grad.dtype == torch.bfloat16
    assert name == "none" or (x.grad is not None and torch.isfinite(x.grad).all())
