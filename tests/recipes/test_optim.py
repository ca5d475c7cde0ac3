"""Optimiser settings, weight-decay groups and LR schedules against their published definitions."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import resblocks
from recipes.modules.optim import (
    OptimizerSettings,
    ScheduleSettings,
    build_optimizer,
    configure_optimizers,
    lr_at,
    no_weight_decay_names,
    param_groups,
)
from resblocks.errors import ConfigError


def nanogpt_get_lr(it, learning_rate=1e-3, warmup_iters=100, lr_decay_iters=2000, min_lr=1e-4):
    """nanoGPT train.py's get_lr, verbatim."""
    if it < warmup_iters:
        return learning_rate * (it + 1) / (warmup_iters + 1)
    if it > lr_decay_iters:
        return min_lr
    decay_ratio = (it - warmup_iters) / (lr_decay_iters - warmup_iters)
    coeff = 0.5 * (1.0 + math.cos(math.pi * decay_ratio))
    return min_lr + coeff * (learning_rate - min_lr)


def test_cosine_with_warmup_is_nanogpts_schedule():
    sched = ScheduleSettings(name="cosine", warmup_steps=100, min_lr=1e-4)
    for step in (0, 1, 50, 99, 100, 101, 500, 1000, 1999, 2000, 2500):
        assert lr_at(step, 1e-3, sched, total_steps=2000) == pytest.approx(nanogpt_get_lr(step), rel=1e-12)


def test_multistep_is_the_resnet_paper_schedule():
    sched = ScheduleSettings(name="multistep", milestones=[32000, 48000], gamma=0.1)
    lrs = {s: lr_at(s, 0.1, sched, 64000) for s in (0, 31999, 32000, 47999, 48000, 63999)}
    assert lrs == pytest.approx({0: 0.1, 31999: 0.1, 32000: 0.01, 47999: 0.01, 48000: 0.001, 63999: 0.001})


def test_step_and_constant_schedules():
    step = ScheduleSettings(name="step", step_size=30, gamma=0.5)
    assert [lr_at(s, 1.0, step, 100) for s in (0, 29, 30, 60, 95)] == pytest.approx([1, 1, 0.5, 0.25, 0.125])
    assert lr_at(12345, 0.3, ScheduleSettings(), 10) == 0.3


def test_lambda_scheduler_steps_follow_lr_at():
    net = nn.Linear(4, 4)
    sched = ScheduleSettings(name="cosine", warmup_steps=3, min_lr=0.01)
    out = configure_optimizers(net, OptimizerSettings(lr=0.1), sched, total_steps=10)
    opt, scheduler = out["optimizer"], out["lr_scheduler"]["scheduler"]
    assert out["lr_scheduler"]["interval"] == "step"
    seen = []
    for _ in range(12):
        seen.append(opt.param_groups[0]["lr"])
        opt.step()
        scheduler.step()
    assert seen == pytest.approx([lr_at(s, 0.1, sched, 10) for s in range(12)])


class WithScalars(nn.Module):
    """A conv, a norm, a bias, a scalar gate and a hook-listed matrix."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)  # weight decays, bias does not
        self.norm = nn.LayerNorm(4)
        self.gate = nn.Parameter(torch.zeros(()))
        self.pos_embed = nn.Parameter(torch.zeros(1, 8, 4))

    def no_weight_decay(self) -> set[str]:
        return {"pos_embed"}


def test_weight_decay_skips_norms_biases_scalars_and_listed_names():
    model = nn.Sequential(WithScalars())
    assert no_weight_decay_names(model) == {"0.conv.bias", "0.norm.weight", "0.norm.bias", "0.gate", "0.pos_embed"}
    decay, no_decay = param_groups(model, weight_decay=0.1)
    assert decay["weight_decay"] == 0.1 and [p.shape for p in decay["params"]] == [torch.Size([4, 3, 3, 3])]
    assert no_decay["weight_decay"] == 0.0 and len(no_decay["params"]) == 5


def test_residual_scalars_of_real_shortcuts_get_no_decay():
    net = resblocks.build_model("cifar_resnet20", num_classes=10, shortcut="rezero")
    skip = no_weight_decay_names(net)
    gates = [n for n, p in net.named_parameters() if ".shortcut." in n]
    assert gates and all(n in skip for n in gates if dict(net.named_parameters())[n].ndim < 2)
    bn = [n for n, m in net.named_modules() if isinstance(m, nn.BatchNorm2d)]
    assert bn and all(f"{m}.weight" in skip for m in bn)
    # Every parameter lands in exactly one group.
    groups = param_groups(net, 1e-4)
    assert sum(len(g["params"]) for g in groups) == len(list(net.parameters()))


def test_optimizers_get_their_settings():
    net = nn.Linear(3, 3)
    sgd = build_optimizer(net, OptimizerSettings(name="sgd", lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-4))
    assert isinstance(sgd, torch.optim.SGD)
    assert sgd.defaults["momentum"] == 0.9 and sgd.defaults["nesterov"]
    adamw = build_optimizer(net, OptimizerSettings(lr=3e-4, betas=[0.9, 0.95], weight_decay=0.1))
    assert isinstance(adamw, torch.optim.AdamW) and adamw.defaults["betas"] == (0.9, 0.95)
    assert [g["weight_decay"] for g in adamw.param_groups] == [0.1, 0.0]


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [({"name": "adam"}, "optim.name"), ({"lr": 0}, "optim.lr"), ({"betas": [0.9]}, "optim.betas")],
)
def test_bad_optimizer_settings(kwargs, key):
    with pytest.raises(ConfigError, match=rf"^{key}: "):
        OptimizerSettings(**kwargs)


def test_bad_schedule_settings():
    with pytest.raises(ConfigError, match=r"^sched\.step_size: 0; valid: >= 1"):
        ScheduleSettings(name="step")
    with pytest.raises(ConfigError, match=r"^sched\.milestones: "):
        ScheduleSettings(name="multistep", milestones=[48000, 32000])
