"""Data-parallel behaviour: per-rank numbers by default; ``reduce=True`` averages them over the process group
(one ``all_reduce`` in ``collect()``); without a process group it changes nothing. The averaging itself is
checked on a one-process gloo group (the multi-rank mean is torch's ``all_reduce``)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.distributed as dist

from resblocks.diagnostics import QUANTITIES, ResidualProbe, SubLayerStats, mean_over_ranks, to_scalars

from diag_models import TokenBlocks


def probed(reduce: bool) -> list:
    torch.manual_seed(0)
    model = TokenBlocks(shortcut={"name": "laurel_rw_pa", "norm": "softmax"})
    with ResidualProbe(model, reduce=reduce, effective_rank=True) as probe:
        model(torch.randn(2, 3, 16, requires_grad=True)).sum().backward()
        return probe.collect()


def equal(u: float, v: float) -> bool:
    return u == v or (math.isnan(u) and math.isnan(v))


def same(a: list, b: list) -> bool:
    return all(
        all(equal(getattr(x, q), getattr(y, q)) for q in QUANTITIES) and x.state == y.state for x, y in zip(a, b)
    )


def test_reduce_without_a_process_group_is_a_no_op() -> None:
    assert not dist.is_initialized()
    t = torch.tensor([1.0, math.nan])
    assert mean_over_ranks(t) is t
    assert same(probed(reduce=True), probed(reduce=False))


@pytest.mark.skipif(not dist.is_available() or not dist.is_gloo_available(), reason="no gloo backend")
def test_reduce_on_a_one_rank_group(tmp_path) -> None:
    dist.init_process_group("gloo", store=dist.FileStore(str(tmp_path / "store"), 1), rank=0, world_size=1)
    try:
        assert same(probed(reduce=True), probed(reduce=False))
    finally:
        dist.destroy_process_group()


def test_to_scalars_names_and_nans() -> None:
    records = probed(reduce=False)
    scalars = to_scalars(records, prefix="res")
    assert scalars["res/x_rms/0"] == records[0].x_rms
    assert scalars["res/shortcut.alpha/3"] == records[3].state["shortcut.alpha"]
    assert len(scalars) == 4 * (len(QUANTITIES) + len(records[0].state))
    blank = SubLayerStats(name="x", index=11, total=12, block=5, blocks=6, per_block=2, x_rms=0.5)
    assert to_scalars([blank]) == {"residual/x_rms/11": 0.5}  # NaN (not recorded) is left out
    assert "residual/x_rms/03" in to_scalars([blank.__class__(**{**blank.as_dict(), "index": 3})])  # padded
