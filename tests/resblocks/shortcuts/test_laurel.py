"""All LAuReL variants (arXiv 2411.07501): identity at init, they train, and the combined equations 5-6."""

from __future__ import annotations

import pytest
import torch

from resblocks import ConfigError
from resblocks.shortcuts import SHORTCUTS, Site

from .conftest import merge

LAUREL = [n for n in SHORTCUTS.names() if n.startswith("laurel_")]
VARIANTS = [(n, {}) for n in LAUREL] + [
    ("laurel_pa", {"rank": 4}),
    ("laurel_rw", {"per_channel": True}),
    ("laurel_rw_lr", {"init": "column_orthogonal", "per_channel": True}),
]


@pytest.mark.parametrize(("name", "options"), VARIANTS, ids=lambda v: str(v) if v else "default")
def test_identity_at_init_then_trains(name: str, options: dict, layout: str, make, rand, sgd_step) -> None:
    rule = make(name, layout, **options)
    fx, x = rand(layout), rand(layout)
    prev = [rand(layout) for _ in range(3)]  # earlier activations, newest first

    def run() -> torch.Tensor:
        return merge(rule, fx, x, prev)

    assert torch.equal(run(), fx + x)  # exactly, even with random earlier activations
    sgd_step(rule, run())
    assert not torch.allclose(run(), fx + x)


def test_rw_lr_equation(layout: str, make, rand, to_last) -> None:
    rule = make("laurel_rw_lr", layout, rank=4, init_alpha=0.6, init_beta=1.3)
    with torch.no_grad():
        rule.low_rank.up.normal_()
    down, up = rule.low_rank.down[0], rule.low_rank.up[0]
    fx, x = rand(layout), rand(layout)
    xl = to_last(x, layout)
    expected = 0.6 * to_last(fx, layout) + 1.3 * (xl + xl @ down.T @ up.T)  # eq. 5
    torch.testing.assert_close(to_last(rule(fx, x), layout), expected)
    assert sum(p.numel() for p in rule.parameters()) == 2 * 4 * 32 + 2


def test_rw_lr_pa_equation(layout: str, make, rand, to_last) -> None:
    rule = make("laurel_rw_lr_pa", layout, rank=4, k=3, norm="sigmoid", init_alpha=0.25)
    with torch.no_grad():
        rule.previous.h.up.normal_()
        rule.previous.gamma.normal_()
    g, down, up = rule.previous.gamma, rule.previous.h.down, rule.previous.h.up
    prev = [rand(layout) for _ in range(3)]  # newest first: x_{i-1}, x_{i-2}, x_{i-3}
    fx, x = rand(layout), rand(layout)
    lags = [to_last(t, layout) for t in (x, prev[0], prev[1])]  # k = 3 lags: x_i, x_{i-1}, x_{i-2}
    stream = lags[0] + sum(g[j] * lags[j] @ down[j].T @ up[j].T for j in range(3))
    expected = 0.25 * to_last(fx, layout) + 0.75 * stream  # eq. 6, keeping the identity term
    torch.testing.assert_close(to_last(rule(fx, x, prev), layout), expected)
    assert sum(p.numel() for p in rule.parameters()) == 2 * 4 * 3 * 32 + 3 + 1  # 2rkD + k + 1 (sigmoid)


def test_rw_pa_equation(layout: str, make, rand) -> None:
    rule = make("laurel_rw_pa", layout, k=2, init_alpha=2.0, init_beta=0.5)
    with torch.no_grad():
        rule.previous.gamma.copy_(torch.tensor([0.3, -0.7]))
    prev = rand(layout)
    fx, x = rand(layout), rand(layout)
    torch.testing.assert_close(rule(fx, x, [prev]), 2.0 * fx + 0.5 * (x + 0.3 * x - 0.7 * prev))


def test_options_are_the_union_of_the_parts() -> None:
    rw = {"norm": "none", "init_alpha": None, "init_beta": None, "per_channel": False}
    lr = {"rank": 16, "init": "xavier"}
    pa = {"k": 3, "rank": None, "init": "xavier"}
    assert SHORTCUTS.options("laurel_rw") == rw
    assert SHORTCUTS.options("laurel_lr") == lr
    assert SHORTCUTS.options("laurel_pa") == pa
    assert SHORTCUTS.options("laurel_rw_lr") == rw | lr
    assert SHORTCUTS.options("laurel_rw_pa") == rw | pa
    assert SHORTCUTS.options("laurel_rw_lr_pa") == rw | pa | {"rank": 16}  # per-lag low rank by default


def test_direct_construction_checks_option_names() -> None:
    with pytest.raises(ConfigError, match=r"^shortcut\.rnk: unknown option for shortcut 'laurel_rw_lr'"):
        SHORTCUTS.get("laurel_rw_lr")(Site(dim=32), rnk=4)


@pytest.mark.parametrize("name", ["laurel_rw_lr", "laurel_rw_lr_pa"])
def test_combined_options_are_checked(name: str, make) -> None:
    with pytest.raises(ConfigError, match=r"^shortcut\.rank: 64 with width 32"):
        make(name, rank=64)
    with pytest.raises(ConfigError, match=r"^shortcut\.norm: 'tanh'"):
        make(name, norm="tanh")
