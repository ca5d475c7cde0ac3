"""Every model family x every shortcut rule x every norm placement: build, forward, backward, train.

The matrix is generated from the registries, so a new rule or placement is covered without editing this file.
A combination is valid unless the rule says otherwise (``layouts``, ``requires_norm``); invalid ones must be
refused with a ConfigError at build time, valid ones must train: after two optimiser steps every parameter
tensor has received a non-zero gradient (this catches dead branches such as two zero-inits in one branch).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import resblocks
from resblocks import NORM_PLACEMENTS, SHORTCUTS, ConfigError


@dataclass(frozen=True)
class Family:
    model: str
    options: dict[str, Any]
    layout: str  # "image" or "token": decides which rules and norm placements apply
    make_batch: Callable[[torch.Generator], tuple[tuple[torch.Tensor, ...], torch.Tensor]]
    loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    accepts_shortcut: bool = True


def image_batch(chans: int, size: int, classes: int = 3, n: int = 4):
    def make(g: torch.Generator):
        return (torch.randn(n, chans, size, size, generator=g),), torch.randint(0, classes, (n,), generator=g)

    return make


def token_batch(vocab: int, seq: int, classes: int | None, n: int = 4):
    def make(g: torch.Generator):
        x = torch.randint(0, vocab, (n, seq), generator=g)
        if classes is None:  # language modelling: predict every next token
            return (x,), torch.randint(0, vocab, (n, seq), generator=g)
        return (x,), torch.randint(0, classes, (n,), generator=g)

    return make


def ce(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))


FAMILIES = {
    "cifar_resnet": Family("cifar_resnet", dict(depth=8, width=8, in_chans=1, num_classes=3), "image",
                           image_batch(1, 16), ce),
    "preact_resnet": Family("preact_resnet", dict(depth=11, width=4, in_chans=3, num_classes=3), "image",
                            image_batch(3, 16), ce),
    "resnet": Family("resnet", dict(layers=(1, 1, 1, 1), block="basic", in_chans=3, num_classes=3), "image",
                     image_batch(3, 32), ce),
    "wide_resnet": Family("wide_resnet", dict(depth=10, widen_factor=1, in_chans=1, num_classes=3), "image",
                          image_batch(1, 16), ce),
    "resnext": Family("resnext", dict(depth=11, cardinality=2, base_width=4, in_chans=3, num_classes=3), "image",
                      image_batch(3, 16), ce),
    "densenet_bc": Family("densenet_bc", dict(depth=10, growth_rate=4, in_chans=1, num_classes=3), "image",
                          image_batch(1, 16), ce, accepts_shortcut=False),
    "vit": Family("vit", dict(image_size=8, patch_size=4, in_chans=1, num_classes=3, depth=2, dim=16, heads=2),
                  "token", image_batch(1, 8), ce),
    "gpt": Family("gpt", dict(vocab_size=11, block_size=8, depth=2, dim=16, heads=2), "token",
                  token_batch(11, 8, None), ce),
    "transformer_classifier": Family(
        "transformer_classifier",
        dict(vocab_size=11, num_classes=3, max_len=8, depth=2, dim=16, heads=2, dropout=0.0),
        "token", token_batch(11, 8, 3), ce),
}

SMALL_RANK = 4  # below the narrowest stage width of the tiny models


def spec(rule: str) -> Any:
    return {"name": rule, "rank": SMALL_RANK} if "rank" in SHORTCUTS.options(rule) else rule


def is_valid(family: Family, rule: str, norm: str | None) -> bool:
    cls = SHORTCUTS.get(rule)
    if family.layout not in cls.layouts:
        return False
    return cls.requires_norm is None or cls.requires_norm == norm


def cases():
    for fname, fam in FAMILIES.items():
        if not fam.accepts_shortcut:
            continue
        norms = NORM_PLACEMENTS if fam.layout == "token" else (None,)
        for rule in SHORTCUTS.names():
            for norm in norms:
                yield pytest.param(fname, rule, norm, id=f"{fname}-{rule}" + (f"-{norm}" if norm else ""))


def build(fam: Family, rule: str | None, norm: str | None, **extra: Any) -> nn.Module:
    opts = dict(fam.options, **extra)
    if rule is not None:
        opts["shortcut"] = spec(rule)
    if norm is not None:
        opts["norm"] = norm
    return resblocks.build_model(fam.model, **opts)


@pytest.mark.parametrize("fname,rule,norm", list(cases()))
def test_combination_trains(fname: str, rule: str, norm: str | None) -> None:
    fam = FAMILIES[fname]
    torch.manual_seed(0)
    if not is_valid(fam, rule, norm):
        with pytest.raises(ConfigError):
            build(fam, rule, norm)
        return
    assert_trains(fname, build(fam, rule, norm))


MODIFIERS = {"drop_path_rate": 0.2, "layer_scale_init": 0.1}


def modifier_cases():
    for fname, fam in FAMILIES.items():
        if fam.accepts_shortcut:
            for rule in SHORTCUTS.names():
                norm = SHORTCUTS.get(rule).requires_norm if fam.layout == "token" else None
                if is_valid(fam, rule, norm):
                    yield pytest.param(fname, rule, norm, id=f"{fname}-{rule}")


@pytest.mark.parametrize("fname,rule,norm", list(modifier_cases()))
def test_combination_with_modifiers_trains(fname: str, rule: str, norm: str | None) -> None:
    """The branch-output modifiers (LayerScale, stochastic depth) compose with every rule of every family."""
    torch.manual_seed(0)
    assert_trains(fname, build(FAMILIES[fname], rule, norm, **MODIFIERS).train())


def assert_trains(fname: str, model: nn.Module) -> None:
    fam = FAMILIES[fname]
    g = torch.Generator().manual_seed(0)
    inputs, y = fam.make_batch(g)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    touched = {name: False for name, _ in model.named_parameters()}
    for step in range(3):  # gradients seen at steps 0, 1, 2; two optimiser steps in between
        opt.zero_grad(set_to_none=True)
        out = model(*inputs)
        if step == 0:
            assert out.shape[0] == y.shape[0] and out.shape[-1] == (11 if fname == "gpt" else 3)
            assert torch.isfinite(out).all()
        loss = fam.loss(out, y)
        loss.backward()
        for name, p in model.named_parameters():
            if p.grad is not None and p.grad.abs().sum() > 0:
                touched[name] = True
        if step < 2:
            opt.step()
    dead = [n for n, ok in touched.items() if not ok]
    assert not dead, f"parameters that never received a gradient: {dead}"


def test_matrix_covers_every_rule_and_placement() -> None:
    assert {c.values[1] for c in modifier_cases()} == set(SHORTCUTS.names())
    ids = {(c.values[1], c.values[2]) for c in cases()}
    assert {r for r, _ in ids} == set(SHORTCUTS.names())
    assert {n for _, n in ids if n} == set(NORM_PLACEMENTS)


@pytest.mark.parametrize("fname", list(FAMILIES))
def test_tiny_model_overfits_one_batch(fname: str) -> None:
    """A tiny model of each family memorises one fixed batch: the loss falls by at least 90%."""
    fam = FAMILIES[fname]
    torch.manual_seed(0)
    model = build(fam, None, None)
    g = torch.Generator().manual_seed(1)
    inputs, y = fam.make_batch(g)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    model.train()
    first = None
    for _ in range(150):
        opt.zero_grad(set_to_none=True)
        loss = fam.loss(model(*inputs), y)
        loss.backward()
        opt.step()
        first = loss.item() if first is None else first
        if loss.item() < 0.1 * first:
            break
    # BatchNorm models are judged in train mode (batch statistics), like during training.
    assert loss.item() < 0.1 * first, f"{fname}: loss {first:.3f} -> {loss.item():.3f}"


def test_densenet_refuses_a_shortcut_rule() -> None:
    with pytest.raises(ConfigError):
        build(FAMILIES["densenet_bc"], "identity", None)
