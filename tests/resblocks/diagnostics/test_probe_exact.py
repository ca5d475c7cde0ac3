"""The probe only reads: outputs, every gradient, every buffer and the random state are bit-identical with
and without it, for several rules (LAuReL-PA's earlier activations, highway's input-dependent gate, the
fixed decayed weights, projection's BatchNorm), with dropout and stochastic depth drawing random numbers,
with activation checkpointing around every ``Residual``, and under bf16 autocast."""

from __future__ import annotations

import copy
import math
from functools import partial

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.distributed.algorithms._checkpoint.checkpoint_wrapper import (
    CheckpointImpl,
    apply_activation_checkpointing,
    checkpoint_wrapper,
)

import resblocks
from resblocks import Residual
from resblocks.diagnostics import QUANTITIES, ResidualProbe

from diag_models import perturb_

RULES = ["identity", "laurel_rw_lr_pa", "highway", "decayed", "projection", "rezero"]


def spec(rule: str) -> object:
    options = {"rank": 4} if "rank" in resblocks.SHORTCUTS.options(rule) else {}
    options |= {"init": 0.5} if rule == "rezero" else {}  # the branch counts from step 0
    return {"name": rule, **options}


def gpt(rule: str) -> nn.Module:
    return resblocks.build_model(
        "gpt", vocab_size=13, block_size=8, depth=2, dim=16, heads=2, dropout=0.1, drop_path_rate=0.2,
        shortcut=spec(rule),
    )


def cnn(rule: str) -> nn.Module:
    return resblocks.build_model(
        "cifar_resnet", depth=8, width=4, num_classes=3, drop_path_rate=0.2, shortcut=spec(rule)
    )


def batch(kind: str) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    if kind == "gpt":
        return torch.randint(0, 13, (3, 8), generator=g), torch.randint(0, 13, (3, 8), generator=g)
    return torch.randn(3, 3, 16, 16, generator=g), torch.randint(0, 3, (3,), generator=g)


def run(model: nn.Module, kind: str, probe: ResidualProbe | None, autocast: bool = False):
    """Two training steps' forward + backward (the probe records the first), everything that could differ."""
    x, y = batch(kind)
    torch.manual_seed(2)  # the same dropout and stochastic-depth draws in every run
    outs, grads = [], []
    for step in range(2):
        model.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            out = model(x)
            loss = F.cross_entropy(out.reshape(-1, out.shape[-1]).float(), y.reshape(-1))
        loss.backward()
        outs.append(out.detach())
        grads.append({n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None})
        if probe is not None and step == 0:
            records = probe.collect()
    buffers = {n: b.clone() for n, b in model.named_buffers()}
    return outs, grads, buffers, torch.get_rng_state(), (records if probe is not None else None)


def assert_identical(a, b) -> None:
    (outs_a, grads_a, bufs_a, rng_a, _), (outs_b, grads_b, bufs_b, rng_b, _) = a, b
    for oa, ob in zip(outs_a, outs_b):
        assert torch.equal(oa, ob)
    for ga, gb in zip(grads_a, grads_b):
        assert ga.keys() == gb.keys() and ga
        for n in ga:
            assert torch.equal(ga[n], gb[n]), n
    assert bufs_a.keys() == bufs_b.keys()
    for n in bufs_a:
        assert torch.equal(bufs_a[n], bufs_b[n]), n
    assert torch.equal(rng_a, rng_b)


def strip(grads_or_bufs: dict) -> dict:
    return {n.replace("._checkpoint_wrapped_module", ""): t for n, t in grads_or_bufs.items()}


def checkpointed(model: nn.Module, impl: CheckpointImpl = CheckpointImpl.NO_REENTRANT) -> nn.Module:
    wrap = partial(checkpoint_wrapper, checkpoint_impl=impl)
    apply_activation_checkpointing(model, checkpoint_wrapper_fn=wrap, check_fn=lambda m: isinstance(m, Residual))
    return model


@pytest.mark.parametrize("kind", ["gpt", "cnn"])
@pytest.mark.parametrize("rule", RULES)
def test_probe_changes_nothing(kind: str, rule: str) -> None:
    torch.manual_seed(0)
    plain = perturb_((gpt if kind == "gpt" else cnn)(rule)).train()
    probed = copy.deepcopy(plain)
    reference = run(plain, kind, None)
    with ResidualProbe(probed, effective_rank=True) as probe:
        result = run(probed, kind, probe)
    assert_identical(reference, result)
    records = result[-1]
    assert all(not math.isnan(r.grad_rms) and not math.isnan(r.x_rms) for r in records)


@pytest.mark.parametrize("rule", ["laurel_rw_lr_pa", "highway", "decayed"])
@pytest.mark.parametrize("kind", ["gpt", "cnn"])
def test_with_activation_checkpointing(kind: str, rule: str) -> None:
    """Checkpointed + probed is bit-identical to checkpointed alone, and reports what the plain model's
    probe reports: the recomputation in the backward is not recorded a second time."""
    torch.manual_seed(0)
    plain = perturb_((gpt if kind == "gpt" else cnn)(rule)).train()
    ckpt, ckpt_probed, plain_probed = (copy.deepcopy(plain) for _ in range(3))
    ckpt, ckpt_probed = checkpointed(ckpt), checkpointed(ckpt_probed)
    reference = run(ckpt, kind, None)
    with ResidualProbe(ckpt_probed) as probe:
        result = run(ckpt_probed, kind, probe)
    assert_identical(reference, result)
    with ResidualProbe(plain_probed) as probe:
        expected = run(plain_probed, kind, probe)[-1]
    got = result[-1]
    assert [r.name for r in got] == [r.name for r in expected]
    for g, e in zip(got, expected):
        for q in QUANTITIES:
            a, b = getattr(g, q), getattr(e, q)
            assert (math.isnan(a) and math.isnan(b)) or a == pytest.approx(b, rel=1e-5, abs=1e-9), (g.name, q)
        assert g.state == pytest.approx(e.state, rel=1e-6)


def test_with_reentrant_checkpointing() -> None:
    """The reentrant implementation runs the first forward without grad: dL/dx still reaches the input.

    (A rule without earlier activations: reentrant checkpointing cannot carry LAuReL-PA's ``hiddens``
    through its no-grad forward, probe or not; the library's own test uses the non-reentrant one.)"""
    torch.manual_seed(0)
    plain = perturb_(gpt("highway")).train()
    ckpt, ckpt_probed = (checkpointed(copy.deepcopy(plain), CheckpointImpl.REENTRANT) for _ in range(2))
    reference = run(ckpt, "gpt", None)
    with ResidualProbe(ckpt_probed) as probe:
        result = run(ckpt_probed, "gpt", probe)
    assert_identical(reference, result)
    assert all(not math.isnan(r.grad_rms) for r in result[-1])


@pytest.mark.parametrize("kind", ["gpt", "cnn"])
def test_under_bf16_autocast(kind: str) -> None:
    """Identical under autocast too, and every statistic is float32 while the branches run in bf16."""
    torch.manual_seed(0)
    plain = perturb_((gpt if kind == "gpt" else cnn)("highway")).train()
    probed = copy.deepcopy(plain)
    reference = run(plain, kind, None, autocast=True)
    dtypes = []
    probe = ResidualProbe(probed)
    collect = probe.collect

    def collect_and_look() -> list:
        dtypes.extend(t.dtype for v in probe._values for t in v.values())
        dtypes.extend(t.dtype for s in probe._state for t in s.values())
        return collect()

    probe.collect = collect_and_look  # type: ignore[method-assign]
    with probe:
        result = run(probed, kind, probe, autocast=True)
    assert_identical(reference, result)
    assert dtypes and set(dtypes) == {torch.float32}
    assert all(not math.isnan(r.f_rms) and not math.isnan(r.grad_rms) for r in result[-1])
