"""Off unless attached: the probe leaves no module hook and no tensor hook behind, and keeps no activation."""

from __future__ import annotations

import gc
import math
import weakref

import pytest
import torch
from torch import nn

import resblocks
from resblocks import ConfigError, Residual
from resblocks.diagnostics import ResidualProbe

from diag_models import ImageBlocks, TokenBlocks

HOOK_DICTS = (
    "_forward_hooks",
    "_forward_pre_hooks",
    "_forward_hooks_with_kwargs",
    "_forward_pre_hooks_with_kwargs",
    "_backward_hooks",
    "_backward_pre_hooks",
)


def module_hooks(model: nn.Module) -> int:
    return sum(len(getattr(m, d)) for m in model.modules() for d in HOOK_DICTS)


def tensor_hooks(t: torch.Tensor) -> int:
    return len(t._backward_hooks or {})


class StreamSpy:
    """Our own pre-hooks that keep the stream tensors entering each sub-layer (to inspect their hooks)."""

    def __init__(self, model: nn.Module) -> None:
        self.inputs: list[torch.Tensor] = []
        self.handles = [
            m.register_forward_pre_hook(lambda _m, args: self.inputs.append(args[0]))
            for m in model.modules()
            if isinstance(m, Residual)
        ]

    def remove(self) -> None:
        for h in self.handles:
            h.remove()


@pytest.mark.parametrize("make", [TokenBlocks, ImageBlocks], ids=["token", "image"])
@pytest.mark.parametrize("backward", [True, False], ids=["backward", "forward_only"])
def test_no_hooks_left(make, backward: bool) -> None:
    torch.manual_seed(0)
    model = make()
    x = torch.randn(2, 3, 16) if make is TokenBlocks else torch.randn(2, 4, 8, 8)
    x.requires_grad_()
    assert module_hooks(model) == 0
    spy = StreamSpy(model)
    probe = ResidualProbe(model, effective_rank=True)
    with probe:
        assert probe.attached and module_hooks(model) > len(spy.handles)
        out = model(x)
        assert all(tensor_hooks(t) == 1 for t in spy.inputs)  # the probe's dL/dx hook, one per input
        if backward:
            out.sum().backward()
    spy.remove()
    assert not probe.attached
    assert module_hooks(model) == 0
    assert all(tensor_hooks(t) == 0 for t in spy.inputs), "a tensor hook outlived detach()"
    records = probe.collect()  # still readable after detach; gradients only if the backward ran inside
    assert all(math.isnan(r.grad_rms) != backward for r in records)
    # No reference to any activation is kept: once the caller drops them, they are freed.
    refs = [weakref.ref(t) for t in spy.inputs]
    del out, spy
    gc.collect()
    assert all(r() is None or r() is x for r in refs)


def test_collect_releases_tensor_hooks_and_rows() -> None:
    torch.manual_seed(0)
    model = TokenBlocks()
    spy = StreamSpy(model)
    with ResidualProbe(model, effective_rank=True) as probe:
        out = model(torch.randn(2, 3, 16, requires_grad=True))
        out.sum().backward()
        probe.collect()
        assert all(tensor_hooks(t) == 0 for t in spy.inputs)
        assert probe._rows == [None] * 4 and not probe._tensor_handles and not probe._stream_in
    spy.remove()


def test_records_the_first_forward_after_collect() -> None:
    """One step per collect: a second forward (a micro-batch, a recomputation) is not recorded."""
    torch.manual_seed(0)
    model = TokenBlocks()
    a, b = torch.randn(2, 3, 16), 10 * torch.randn(2, 3, 16)
    with ResidualProbe(model) as probe:
        model(a)
        model(b)
        first = probe.collect()
        model(b)
        second = probe.collect()
    with ResidualProbe(model) as probe:
        model(a)
        only_a = probe.collect()
    assert [r.x_rms for r in first] == [r.x_rms for r in only_a]
    assert second[0].x_rms == pytest.approx(b.pow(2).mean().sqrt().item(), rel=1e-6)


def test_attach_twice_and_bad_input() -> None:
    model = TokenBlocks()
    probe = ResidualProbe(model).attach()
    with pytest.raises(RuntimeError, match="already attached"):
        probe.attach()
    probe.detach()
    probe.detach()  # idempotent
    assert module_hooks(model) == 0
    with pytest.raises(ConfigError, match=r"^diagnostics: Linear has no resblocks Residual sub-layers; valid: "):
        ResidualProbe(nn.Linear(2, 2))
    dense = resblocks.build_model("densenet_bc", depth=10, growth_rate=4, in_chans=1, num_classes=3)
    with pytest.raises(ConfigError, match="has no resblocks Residual"):
        ResidualProbe(dense)
    with pytest.raises(ConfigError, match=r"diagnostics.rank_rows: 0; valid"):
        ResidualProbe(model, rank_rows=0)
