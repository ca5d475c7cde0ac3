"""Optimisers, weight-decay parameter groups and step-based LR schedules (plain data, no Hydra).

* SGD with momentum and step / multi-step decay: the ResNet paper's schedule
  (He et al. 2016, arXiv 1512.03385, §4.2: lr 0.1, /10 at 32k and 48k iterations).
* AdamW with linear warm-up and cosine decay to ``min_lr`` (nanoGPT's ``get_lr``).

Weight decay applies to matrices and conv kernels only: norm layers, biases, residual scalars
(any parameter with fewer than 2 dims) and the names a module lists in ``no_weight_decay()``
(timm's convention, used by :class:`resblocks.Shortcut` rules and e.g. position embeddings)
get none. ``optim.fused`` picks torch's fused update kernel (``recipes.engine.fast_path``).

Valid values are the optimiser's own: :func:`check_optimizer` constructs the torch optimiser on a
dummy parameter and turns its ``ValueError`` into a one-line ``ConfigError`` naming the key (so the
rules stay torch's, whatever torch version); the learning rates a schedule reaches (``min_lr``,
``lr * gamma``) are asked of it the same way (:func:`check_schedule`).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from resblocks.errors import ConfigError
from resblocks.norms import is_norm

from ..engine.fast_path import check_switch, use_fused
from ..values import check_ranges, ranged

OPTIMIZERS = ("adamw", "sgd")
SCHEDULES = ("constant", "cosine", "multistep", "step")


@dataclass
class OptimizerSettings:
    """Which optimiser and its hyper-parameters."""

    name: str = "adamw"  # adamw | sgd
    lr: float = ranged(1e-3, gt=0)  # finite and > 0 (torch takes 0 and inf: no training, or NaN weights)
    weight_decay: float = 0.0
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])  # adamw
    eps: float = 1e-8  # adamw
    momentum: float = 0.9  # sgd
    nesterov: bool = False  # sgd
    fused: bool | str = "auto"  # one fused kernel per update (torch's fused=True); auto: where the device has one

    def __post_init__(self) -> None:
        if self.name not in OPTIMIZERS:
            raise ConfigError(f"optim.name: unknown optimiser {self.name!r}; valid: {', '.join(OPTIMIZERS)}")
        check_ranges(self, OptimizerSettings, "optim")
        if len(self.betas) != 2:
            raise ConfigError(f"optim.betas: {list(self.betas)}; valid: two numbers, e.g. [0.9, 0.99]")
        check_switch("optim.fused", self.fused)
        check_optimizer(self)


@dataclass
class ScheduleSettings:
    """Learning-rate schedule, in optimiser steps (warm-up applies to every schedule)."""

    name: str = "constant"  # constant | cosine | multistep | step
    warmup_steps: int = ranged(0, ge=0)  # linear warm-up: lr * (step + 1) / (warmup_steps + 1)
    min_lr: float = ranged(0.0)  # cosine: the LR reached at total_steps and kept after (a rate the optimiser takes)
    total_steps: int | None = ranged(None, ge=1, null="for the trainer's total")  # cosine horizon
    milestones: list[int] = ranged(factory=list, ge=1, each=True)  # noqa: RUF009 (a field); multistep: lr *= gamma at each
    step_size: int = ranged(0, ge=0)  # step: lr *= gamma every step_size steps
    gamma: float = ranged(0.1)  # multistep / step decay factor (lr * gamma: a rate the optimiser takes)

    def __post_init__(self) -> None:
        if self.name not in SCHEDULES:
            raise ConfigError(f"sched.name: unknown schedule {self.name!r}; valid: {', '.join(SCHEDULES)}")
        check_ranges(self, ScheduleSettings, "sched")
        if self.name == "step" and self.step_size < 1:
            raise ConfigError(f"sched.step_size: {self.step_size}; valid: >= 1 with sched.name=step")
        if self.name == "multistep" and list(self.milestones) != sorted(self.milestones):
            raise ConfigError(f"sched.milestones: {list(self.milestones)}; valid: increasing step numbers")


OPTIMIZER_CLASSES: dict[str, type[torch.optim.Optimizer]] = {"adamw": torch.optim.AdamW, "sgd": torch.optim.SGD}


def optimizer_kwargs(optim: OptimizerSettings) -> dict[str, Any]:
    """The torch optimiser's keyword arguments for ``optim`` (weight decay goes per parameter group)."""
    if optim.name == "sgd":
        return {"lr": optim.lr, "momentum": optim.momentum, "nesterov": optim.nesterov}
    return {"lr": optim.lr, "betas": tuple(optim.betas), "eps": optim.eps}


class _Accepted(Exception):
    """Raised by :func:`_no_params` when the optimiser, its values checked, starts reading its parameters."""


def _no_params() -> Iterator[torch.Tensor]:
    raise _Accepted
    yield  # a generator: the optimiser's constructor reads it only after checking its values


def _refusal(cls: type[torch.optim.Optimizer], **kwargs: Any) -> str | None:
    """What ``cls`` says about ``kwargs`` (its ValueError/TypeError), None if it takes them.

    torch's optimisers check their values first and then read the parameters; the parameters here stop
    the constructor at that point, before it sets up any state (a real construction imports
    ``torch._dynamo``, over a second, on a path that should fail fast).
    """
    try:
        cls(_no_params(), **kwargs)
    except _Accepted:
        return None
    except (ValueError, TypeError) as e:
        return " ".join(str(e).split())
    return None


def check_optimizer(optim: OptimizerSettings) -> None:
    """Ask the torch optimiser whether it takes ``optim``'s values; a refusal is one line naming the key.

    The key is the first whose value alone (torch's defaults for the rest) gets the same refusal; if none
    does, the refusal is about a combination and names all the keys.
    """
    cls = OPTIMIZER_CLASSES[optim.name]
    kwargs = {**optimizer_kwargs(optim), "weight_decay": optim.weight_decay}
    said = _refusal(cls, **kwargs)
    if said is None:
        return
    where = f"torch.optim.{cls.__name__}"
    for key, value in kwargs.items():
        if _refusal(cls, **{key: value}) == said:
            shown = list(value) if isinstance(value, tuple) else value
            raise ConfigError(f"optim.{key}: {shown}; valid: what {where} accepts (it says: {said})")
    together = ", ".join(f"optim.{k}={v}" for k, v in kwargs.items())
    raise ConfigError(f"optim: {together}; valid: a combination {where} accepts (it says: {said})")


def check_schedule(optim: OptimizerSettings, sched: ScheduleSettings) -> None:
    """The learning rates the schedule reaches besides ``optim.lr`` must be rates the optimiser takes:
    ``sched.min_lr`` (cosine's floor) and ``optim.lr * gamma**k`` at the first and the last decay."""
    cls = OPTIMIZER_CLASSES[optim.name]
    decays = max(1, len(sched.milestones)) if sched.name == "multistep" else 1
    rates = [("min_lr", sched.min_lr, 0, sched.min_lr)]
    for k in sorted({1, decays}):
        try:
            rates.append(("gamma", sched.gamma, k, optim.lr * sched.gamma**k))
        except OverflowError:
            rates.append(("gamma", sched.gamma, k, math.inf))
    for key, value, k, lr in rates:
        said = _refusal(cls, lr=lr) if math.isfinite(lr) else f"the rate {lr} is not finite"
        if said is not None:
            what = "a learning rate" if key == "min_lr" else "a factor giving learning rates"
            rate = "" if key == "min_lr" else f"optim.lr x gamma^{k} = {lr:g}; "
            raise ConfigError(
                f"sched.{key}: {value}; valid: {what} torch.optim.{cls.__name__} accepts ({rate}it says: {said})"
            )


def lr_at(step: int, base_lr: float, sched: ScheduleSettings, total_steps: int) -> float:
    """The learning rate used for optimiser step ``step`` (0-based)."""
    if step < sched.warmup_steps:
        return base_lr * (step + 1) / (sched.warmup_steps + 1)
    if sched.name == "cosine":
        horizon = sched.total_steps or total_steps
        if step >= horizon:
            return sched.min_lr
        ratio = (step - sched.warmup_steps) / max(1, horizon - sched.warmup_steps)
        return sched.min_lr + 0.5 * (1.0 + math.cos(math.pi * ratio)) * (base_lr - sched.min_lr)
    if sched.name == "multistep":
        return base_lr * sched.gamma ** sum(step >= m for m in sched.milestones)
    if sched.name == "step":
        return base_lr * sched.gamma ** (step // sched.step_size)
    return base_lr


def no_weight_decay_names(model: nn.Module) -> set[str]:
    """Names of parameters that get no weight decay (see the module docstring)."""
    names: set[str] = set()
    for prefix, module in model.named_modules():
        dot = f"{prefix}." if prefix else ""
        if is_norm(module):
            names.update(dot + n for n, _ in module.named_parameters(recurse=False))
        listed = getattr(module, "no_weight_decay", None)
        if callable(listed):
            names.update(dot + n for n in listed())
    names.update(n for n, p in model.named_parameters() if p.ndim < 2)
    return names


def param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Two AdamW/SGD groups: decayed matrices and undecayed rest (empty groups dropped)."""
    skip = no_weight_decay_names(model)
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if p.requires_grad:
            (no_decay if name in skip else decay).append(p)
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return [g for g in groups if g["params"]]


def build_optimizer(model: nn.Module, optim: OptimizerSettings) -> torch.optim.Optimizer:
    """The optimiser over :func:`param_groups`; fused per ``optim.fused`` (``auto``: where the parameters' device has fused kernels)."""
    groups = param_groups(model, optim.weight_decay)
    fused = {"fused": True} if use_fused(optim.fused, (p for g in groups for p in g["params"])) else {}
    optimizer = OPTIMIZER_CLASSES[optim.name](groups, **optimizer_kwargs(optim), **fused)
    optimizer.register_load_state_dict_post_hook(match_param_layouts)
    return optimizer


def match_param_layouts(optimizer: torch.optim.Optimizer) -> None:
    """Give every loaded state tensor (momentum, Adam moments) its parameter's memory layout.

    A checkpoint written by a channels-last run and resumed with ``channels_last=false`` (or the
    reverse) loads NHWC moments for NCHW parameters; the fused kernels walk raw memory and would
    silently pair the wrong elements (the ``foreach`` path is right, only slower).
    """
    for param, state in optimizer.state.items():
        for key, value in state.items():
            if torch.is_tensor(value) and value.shape == param.shape and value.stride() != param.stride():
                state[key] = torch.empty_like(param, dtype=value.dtype, device=value.device).copy_(value)


def build_scheduler(
    optimizer: torch.optim.Optimizer, base_lr: float, sched: ScheduleSettings, total_steps: int
) -> torch.optim.lr_scheduler.LambdaLR:
    """A per-step ``LambdaLR`` following :func:`lr_at` (step it after every optimiser step)."""
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_at(step, base_lr, sched, total_steps) / base_lr)


def configure_optimizers(
    model: nn.Module, optim: OptimizerSettings, sched: ScheduleSettings, total_steps: int
) -> dict[str, Any]:
    """What ``LightningModule.configure_optimizers`` returns: the optimiser and a per-step schedule."""
    optimizer = build_optimizer(model, optim)
    scheduler = build_scheduler(optimizer, optim.lr, sched, total_steps)
    return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step", "frequency": 1}}
