"""decayed: F(x) + alpha_l x with the fixed linear schedule of Zhang et al. 2024 (arXiv 2404.10947)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from resblocks import ConfigError
from resblocks.schedules import decayed_alphas


@pytest.mark.parametrize("depth", [6, 12])
@pytest.mark.parametrize("alpha_min", [0.6, 0.7, 0.8])
def test_schedule_matches_official_code(depth: int, alpha_min: float, make) -> None:
    # Official: decay = 1 - np.linspace(0, 1, 2*depth).reshape(-1, 2) * (1 - min_decay); block b, sub-layer s.
    ref = 1 - np.linspace(0, 1, 2 * depth).reshape(-1, 2) * (1 - alpha_min)
    np.testing.assert_allclose(decayed_alphas(2 * depth, alpha_min).numpy(), ref.reshape(-1), rtol=0, atol=1e-7)
    rules = [make("decayed", index=i, total=2 * depth, alpha_min=alpha_min) for i in range(2 * depth)]
    got = np.array([float(r.alpha) for r in rules]).reshape(-1, 2)
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-7)
    assert got[0, 0] == 1.0 and got[-1, -1] == pytest.approx(alpha_min)


def test_alpha_is_a_fixed_buffer(make) -> None:
    rule = make("decayed", index=5, total=12)
    assert list(rule.parameters()) == []
    assert dict(rule.named_buffers())["alpha"].requires_grad is False
    assert "alpha" not in rule.state_dict()  # derived from the config, never loaded from a checkpoint


def test_equation(layout: str, make, rand) -> None:
    rule = make("decayed", layout, index=7, total=12, alpha_min=0.6)
    fx, x = rand(layout), rand(layout)
    alpha = 1 - 7 / 11 * (1 - 0.6)
    torch.testing.assert_close(rule(fx, x), fx + alpha * x)


def test_alpha_min_one_is_identity(layout: str, make, rand) -> None:
    fx, x = rand(layout), rand(layout)
    for i in range(4):
        assert torch.equal(make("decayed", layout, index=i, total=4, alpha_min=1.0)(fx, x), fx + x)


@pytest.mark.parametrize("bad", [0.0, 1.5, -0.2])
def test_bad_alpha_min(bad: float, make) -> None:
    with pytest.raises(ConfigError, match=r"^shortcut\.alpha_min: .* outside \(0, 1\]"):
        make("decayed", alpha_min=bad)
