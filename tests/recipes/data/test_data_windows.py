"""LM windows: shift by one, reproducible offsets, disjoint DDP shards, fresh windows per epoch."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from torch.utils.data import DistributedSampler

from recipes.data.windows import EpochWindowSampler, FixedWindows, RandomWindows

TOKENS = np.arange(1000, dtype=np.uint16)


def test_y_is_x_shifted():
    ds = RandomWindows(TOKENS, 16, samples_per_epoch=50, seed=0)
    assert len(ds) == 50
    for i in (0, 1, 49, 10_000):  # any index >= 0 is valid
        x, y = ds[i]
        assert x.dtype == y.dtype == torch.int64 and x.shape == y.shape == (16,)
        assert torch.equal(x[1:], y[:-1]) and int(y[-1]) == int(x[-1]) + 1
        assert 0 <= ds.offset(i) <= len(TOKENS) - 17


def test_offsets_reproducible_and_spread():
    a = RandomWindows(TOKENS, 16, 200, seed=0)
    b = RandomWindows(TOKENS, 16, 200, seed=0)
    c = RandomWindows(TOKENS, 16, 200, seed=1)
    offs = [a.offset(i) for i in range(200)]
    assert offs == [b.offset(i) for i in range(200)]
    assert offs != [c.offset(i) for i in range(200)]
    assert len(set(offs)) > 150 and min(offs) < 100 and max(offs) > 880  # covers the corpus


def test_standard_distributed_sampler_is_disjoint():
    ds = RandomWindows(TOKENS, 16, 101, seed=0)
    shards = [list(DistributedSampler(ds, num_replicas=2, rank=r, shuffle=True, seed=0)) for r in range(2)]
    assert len(shards[0]) == len(shards[1]) == 51
    # 101 items over 2 ranks: DistributedSampler pads with one repeat, everything else is disjoint.
    assert len(set(shards[0]) & set(shards[1])) <= 1 and set(shards[0]) | set(shards[1]) == set(range(101))


def test_epoch_sampler_disjoint_and_fresh_per_epoch():
    ds = RandomWindows(TOKENS, 16, 100, seed=0)
    s0, s1 = EpochWindowSampler(ds, num_replicas=2, rank=0), EpochWindowSampler(ds, num_replicas=2, rank=1)
    assert isinstance(s0, DistributedSampler) and len(s0) == 50
    e0 = [list(s0), list(s1)]
    assert not set(e0[0]) & set(e0[1]) and set(e0[0]) | set(e0[1]) == set(range(100))
    s0.set_epoch(1), s1.set_epoch(1)
    e1 = [list(s0), list(s1)]
    assert set(e1[0]) | set(e1[1]) == set(range(100, 200))
    assert [ds.offset(i) for i in e0[0]] != [ds.offset(i) for i in e1[0]]  # new windows each epoch
    single = EpochWindowSampler(ds)  # no process group: one replica
    assert list(single) == list(range(100))


def test_fixed_windows():
    full = FixedWindows(TOKENS, 100)
    assert len(full) == 9 and [int(full[i][0][0]) for i in range(9)] == [0, 100, 200, 300, 400, 500, 600, 700, 800]
    capped = FixedWindows(TOKENS, 100, max_windows=3)
    starts = [int(capped[i][0][0]) for i in range(3)]
    assert starts == [0, 449, 899]  # evenly spaced, last one ends at the corpus end
    _, y = capped[2]
    assert int(y[-1]) == 999
    with pytest.raises(ValueError, match="cannot fill block_size=1000"):
        FixedWindows(TOKENS, 1000)


def test_memmap_pickles_by_path(tmp_path):
    path = tmp_path / "ids.npy"
    np.save(path, TOKENS)
    ds = RandomWindows(np.load(path, mmap_mode="r"), 16, 10)
    blob = pickle.dumps(ds)
    assert len(blob) < 1000  # the path, not the 2000 bytes of tokens
    clone = pickle.loads(blob)
    assert isinstance(clone.tokens, np.memmap) and torch.equal(clone[3][0], ds[3][0])
