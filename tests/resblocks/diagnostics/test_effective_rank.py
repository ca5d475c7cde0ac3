"""Effective rank (Roy & Vetterli 2007, Def. 1) and its bounded row sample."""

from __future__ import annotations

import math

import pytest
import torch

from resblocks.diagnostics import effective_rank, feature_rows


def test_equal_singular_values_give_the_rank() -> None:
    q, _ = torch.linalg.qr(torch.randn(12, 5, generator=torch.Generator().manual_seed(0)))
    assert effective_rank(3 * q).item() == pytest.approx(5, rel=1e-5)  # 5 equal singular values
    assert effective_rank(torch.outer(torch.randn(7), torch.randn(4))).item() == pytest.approx(1, rel=1e-5)


def test_written_out_entropy() -> None:
    rows = torch.diag(torch.tensor([3.0, 1.0, 0.0]))  # singular values 3, 1, 0: p = (3/4, 1/4, 0)
    want = math.exp(-(0.75 * math.log(0.75) + 0.25 * math.log(0.25)))
    assert effective_rank(rows).item() == pytest.approx(want, rel=1e-6)
    assert math.isnan(effective_rank(torch.zeros(3, 3)).item())


def test_token_rows_are_a_bounded_even_sample() -> None:
    x = torch.arange(2 * 5 * 3, dtype=torch.bfloat16).view(2, 5, 3)
    rows = feature_rows(x, "token", max_rows=4)  # 10 rows -> rows 0, 2, 5, 7
    assert rows.dtype == torch.float32 and rows.shape == (4, 3)
    assert torch.equal(rows, x.reshape(10, 3)[[0, 2, 5, 7]].float())
    assert torch.equal(feature_rows(x, "token", max_rows=100), x.reshape(10, 3).float())


@pytest.mark.parametrize("channels_last", [False, True])
def test_image_rows_are_positions_by_channels(channels_last: bool) -> None:
    x = torch.randn(2, 3, 4, 5)
    all_rows = x.permute(0, 2, 3, 1).reshape(-1, 3)  # (b, h, w) x C
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    assert torch.equal(feature_rows(x, "image", max_rows=1000), all_rows)
    idx = torch.arange(7) * 40 // 7
    assert torch.equal(feature_rows(x, "image", max_rows=7), all_rows[idx])


def test_rows_are_a_copy() -> None:
    x = torch.randn(4, 3)
    rows = feature_rows(x, "token", max_rows=10)
    x.zero_()  # an in-place op after the hook (a post-activation ReLU) must not change the sample
    assert rows.abs().sum() > 0
