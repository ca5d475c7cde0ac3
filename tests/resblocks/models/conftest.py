"""Shared fixtures for the Transformer model tests: every registered token shortcut, and a site check."""

from collections.abc import Callable

import pytest
from torch import nn

from resblocks import SHORTCUTS, Residual


def token_shortcuts() -> list:
    """``(name, placement)`` for every registered rule that works on tokens, with the placement it requires."""
    cases = []
    for name in SHORTCUTS.names():
        cls = SHORTCUTS.get(name)
        if "token" in cls.layouts:
            cases.append(pytest.param((name, cls.requires_norm), id=name))
    return cases


@pytest.fixture(params=token_shortcuts())
def shortcut_case(request: pytest.FixtureRequest) -> tuple[str, str | None]:
    return request.param


@pytest.fixture
def assert_stack_sites() -> Callable[[nn.Module, int], None]:
    def check(model: nn.Module, depth: int) -> None:
        residuals = [m for m in model.modules() if isinstance(m, Residual)]
        sites = [r.shortcut.site for r in residuals]
        assert [s.index for s in sites] == list(range(2 * depth))
        assert {s.total for s in sites} == {2 * depth}
        assert {(s.per_block, s.blocks) for s in sites} == {(2, depth)}
        assert len({id(r.shortcut) for r in residuals}) == 2 * depth  # one rule instance per sub-layer

    return check
