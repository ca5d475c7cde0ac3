"""Shared fixtures for the shortcut-rule tests: tiny random tensors in both layouts, rules built by name."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch

from resblocks.shortcuts import Shortcut, Site, shortcut_factory

DIM = 32  # >= every rule's default rank (16), small enough to be fast
SHAPES = {"token": (2, 3, DIM), "image": (2, DIM, 2, 2)}


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


@pytest.fixture(params=["token", "image"])
def layout(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def rand() -> Callable[..., torch.Tensor]:
    """``rand(layout)``: a random activation of that layout's test shape (``dim`` overrides the width)."""

    def make(layout: str, dim: int = DIM) -> torch.Tensor:
        shape = list(SHAPES[layout])
        shape[-1 if layout == "token" else 1] = dim
        return torch.randn(shape)

    return make


@pytest.fixture
def make() -> Callable[..., Shortcut]:
    """``make(name, layout, index=0, total=1, per_block=1, dim=DIM, **options)`` -> a rule built by name."""

    def build(
        name: str,
        layout: str = "token",
        *,
        index: int = 0,
        total: int = 1,
        per_block: int = 1,
        dim: int = DIM,
        **options: Any,
    ) -> Shortcut:
        site = Site(dim=dim, layout=layout, index=index, total=total, per_block=per_block)  # type: ignore[arg-type]
        return shortcut_factory(name, **options)(site)

    return build


def merge(rule: Shortcut, fx: torch.Tensor, x: torch.Tensor, prev: list[torch.Tensor] | None = None) -> torch.Tensor:
    """Call ``rule`` as ``Residual`` does: with the earlier activations ``prev`` (newest first) if it reads them."""
    return rule(fx, x, prev or []) if rule.num_previous else rule(fx, x)


@pytest.fixture
def to_last() -> Callable[[torch.Tensor, str], torch.Tensor]:
    """``to_last(t, layout)``: a ``[..., D]`` view of either layout, so written-out equations can use ``@``."""
    return lambda t, layout: t if layout == "token" else t.movedim(1, -1)


@pytest.fixture
def sgd_step() -> Callable[..., None]:
    """``sgd_step(module, out)``: one SGD step (lr 0.1) on a random linear loss of ``out``."""

    def step(module: torch.nn.Module, out: torch.Tensor, lr: float = 0.1) -> None:
        opt = torch.optim.SGD(module.parameters(), lr=lr)
        opt.zero_grad()
        (out * torch.randn_like(out)).sum().backward()
        opt.step()

    return step
