"""Activation checkpointing around every residual sub-layer: same outputs and gradients, for every rule and family.

The wrapping is the policy the recipes' FSDP strategy applies (``fsdp.activation_checkpointing=true``:
Lightning calls torch's ``apply_activation_checkpointing`` with ``check_fn`` = "is a ``Residual``",
non-reentrant ``torch.utils.checkpoint``). A recomputed sub-layer must see exactly the inputs it saw in
the first pass; rules that read earlier activations (LAuReL-PA) get them as an argument, so it does.
Branch-output modifiers are on too, so stochastic depth's random mask must be replayed as well.
"""

from __future__ import annotations

import copy

import pytest
import torch
from torch.distributed.algorithms._checkpoint.checkpoint_wrapper import (
    CheckpointWrapper,
    apply_activation_checkpointing,
)

from resblocks import SHORTCUTS, Residual

from test_combinations import FAMILIES, build, is_valid

MODIFIERS = {"drop_path_rate": 0.3, "layer_scale_init": 0.5}


def cases():
    for fname, fam in FAMILIES.items():
        if not fam.accepts_shortcut:
            continue
        for rule in SHORTCUTS.names():
            norm = SHORTCUTS.get(rule).requires_norm if fam.layout == "token" else None
            if is_valid(fam, rule, norm):
                yield pytest.param(fname, rule, norm, id=f"{fname}-{rule}")


def checkpoint_every_residual(model: torch.nn.Module) -> torch.nn.Module:
    apply_activation_checkpointing(model, check_fn=lambda m: isinstance(m, Residual))
    return model


@pytest.mark.parametrize("fname,rule,norm", list(cases()))
def test_checkpointed_model_equals_the_plain_one(fname: str, rule: str, norm: str | None) -> None:
    fam = FAMILIES[fname]
    torch.manual_seed(0)
    plain = build(fam, rule, norm, **MODIFIERS).train()
    with torch.no_grad():  # move every rule off its identity-at-init point, so previous activations matter
        for name, p in plain.named_parameters():
            if ".shortcut." in name:
                p.add_(0.1 * torch.randn_like(p))
    ckpt = checkpoint_every_residual(copy.deepcopy(plain))
    wrapped = [m for m in ckpt.modules() if isinstance(m, CheckpointWrapper)]
    assert len(wrapped) == sum(isinstance(m, Residual) for m in plain.modules()) > 0
    inputs, y = fam.make_batch(torch.Generator().manual_seed(0))
    outs, grads = [], []
    for model in (plain, ckpt):
        torch.manual_seed(1)  # the same stochastic-depth and dropout draws in both
        out = model(*inputs)
        fam.loss(out, y).backward()
        outs.append(out.detach())
        grads.append({n.replace("._checkpoint_wrapped_module", ""): p.grad for n, p in model.named_parameters()})
    torch.testing.assert_close(outs[1], outs[0], rtol=0, atol=0)
    assert grads[0].keys() == grads[1].keys()
    for n, g in grads[0].items():
        if g is None:
            assert grads[1][n] is None, n
        else:
            torch.testing.assert_close(grads[1][n], g, rtol=1e-6, atol=1e-7, msg=n)


def test_every_rule_is_covered() -> None:
    assert {c.values[1] for c in cases()} == set(SHORTCUTS.names())


IMAGE_FAMILIES = ["cifar_resnet", "preact_resnet", "resnet", "wide_resnet", "resnext", "densenet_bc", "vit"]


@pytest.mark.parametrize("fname", IMAGE_FAMILIES)
def test_set_grad_checkpointing_equals_the_plain_model(fname: str) -> None:
    """``model.set_grad_checkpointing()`` (timm's switch): each ``Residual`` checkpoints itself, non-reentrant."""
    fam = FAMILIES[fname]
    rule = "laurel_rw_lr_pa" if fam.accepts_shortcut else None  # earlier activations through the checkpoints
    extra = MODIFIERS if fam.accepts_shortcut else {}
    torch.manual_seed(0)
    plain = build(fam, rule, None, **extra).train()
    with torch.no_grad():
        for name, p in plain.named_parameters():
            if ".shortcut." in name:
                p.add_(0.1 * torch.randn_like(p))
    ckpt = copy.deepcopy(plain)
    ckpt.set_grad_checkpointing()
    inputs, y = fam.make_batch(torch.Generator().manual_seed(0))
    outs, grads, saved = [], [], []
    for model in (plain, ckpt):
        torch.manual_seed(1)
        with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(model) or t, lambda t: t):
            out = model(*inputs)
        fam.loss(out, y).backward()
        outs.append(out.detach())
        grads.append({n: p.grad for n, p in model.named_parameters()})
    assert saved.count(ckpt) < saved.count(plain)  # fewer activations kept for the backward
    torch.testing.assert_close(outs[1], outs[0], rtol=0, atol=0)
    for n, g in grads[0].items():
        torch.testing.assert_close(grads[1][n], g, rtol=1e-6, atol=1e-7, msg=n)
