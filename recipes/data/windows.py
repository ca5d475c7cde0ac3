"""Language-model windows over a token array, sampled nanoGPT-style but reproducibly.

Item ``i`` of :class:`RandomWindows` is the window at offset ``hash(seed, i) mod (N - T)``:
a pure function of ``(seed, i)``. The dataset reports ``samples_per_epoch`` items but accepts
any ``i >= 0``; :class:`EpochWindowSampler` feeds epoch ``e`` the indices
``e * samples_per_epoch + [0, samples_per_epoch)``, strided over DDP ranks. So every epoch sees
fresh windows, ranks never share one, and a resumed run draws exactly the same data.
A standard ``DistributedSampler`` over the dataset also gives disjoint, reproducible items.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
from torch.utils.data import Dataset

from .resume import ResumableSampler

_MASK = (1 << 64) - 1


def mix(seed: int, i: int) -> int:
    """splitmix64 of ``(seed, i)``: a fast, well-spread, platform-independent 64-bit hash."""
    z = (seed * 0x9E3779B97F4A7C15 + i * 0xBF58476D1CE4E5B9 + 0x94D049BB133111EB) & _MASK
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK
    return z ^ (z >> 31)


def _window(tokens: np.ndarray, offset: int, block_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    chunk = torch.from_numpy(np.asarray(tokens[offset : offset + block_size + 1], dtype=np.int64))
    return chunk[:-1], chunk[1:]


class _TokenDataset(Dataset):
    """Pickles a whole-file token memmap as its path, so spawned workers re-open it instead of copying it."""

    tokens: np.ndarray

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        t = self.tokens
        if isinstance(t, np.memmap) and t.filename and np.load(t.filename, mmap_mode="r").shape == t.shape:
            state["tokens"] = ("npy-memmap", t.filename)
        return state

    def __setstate__(self, state: dict) -> None:
        if isinstance(state["tokens"], tuple):
            state["tokens"] = np.load(state["tokens"][1], mmap_mode="r")
        self.__dict__.update(state)


class RandomWindows(_TokenDataset):
    """``(x, y)`` int64 ``[T]`` windows at seeded pseudo-random offsets; ``y`` is ``x`` shifted by one."""

    def __init__(self, tokens: np.ndarray, block_size: int, samples_per_epoch: int, seed: int = 0) -> None:
        if len(tokens) < block_size + 1:
            raise ValueError(f"RandomWindows: {len(tokens)} tokens cannot fill block_size={block_size} + 1")
        self.tokens, self.block_size, self.samples_per_epoch, self.seed = tokens, block_size, samples_per_epoch, seed
        self.num_offsets = len(tokens) - block_size  # offsets 0 .. N-T-1 all leave room for y

    def __len__(self) -> int:
        return self.samples_per_epoch

    def offset(self, i: int) -> int:
        """Start of window ``i`` (any ``i >= 0``)."""
        return mix(self.seed, i) % self.num_offsets

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return _window(self.tokens, self.offset(int(i)), self.block_size)


class FixedWindows(_TokenDataset):
    """Evaluation windows: non-overlapping from the start, or ``max_windows`` evenly spaced ones."""

    def __init__(self, tokens: np.ndarray, block_size: int, max_windows: int | None = None) -> None:
        if len(tokens) < block_size + 1:
            raise ValueError(f"FixedWindows: {len(tokens)} tokens cannot fill block_size={block_size} + 1")
        self.tokens, self.block_size = tokens, block_size
        last = len(tokens) - block_size - 1
        n = last // block_size + 1
        if max_windows is not None and max_windows < n:
            self.offsets = np.linspace(0, last, max_windows).astype(np.int64)
        else:
            self.offsets = np.arange(n, dtype=np.int64) * block_size

    def __len__(self) -> int:
        return len(self.offsets)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return _window(self.tokens, int(self.offsets[i]), self.block_size)


class EpochWindowSampler(ResumableSampler):
    """Indices ``epoch * n + j`` for this rank's share of ``j in [0, n)``, ``n = len(dataset)``.

    A ``DistributedSampler`` (via :class:`~recipes.data.resume.ResumableSampler`) so Lightning keeps it
    under DDP and calls ``set_epoch``. Each rank gets ``ceil(n / world)`` indices (the last ones wrap
    around, as ``DistributedSampler`` pads). ``skip``: indices of this rank to leave out of the next
    iteration only (mid-epoch resume).
    """

    def __init__(
        self, dataset: Dataset, num_replicas: int | None = None, rank: int | None = None, skip: int = 0
    ) -> None:
        super().__init__(dataset, shuffle=False, skip=skip, num_replicas=num_replicas, rank=rank)

    def indices(self) -> Iterator[int]:
        n = len(self.dataset)  # type: ignore[arg-type]
        base = self.epoch * n
        return iter(base + (self.rank + k * self.num_replicas) % n for k in range(self.num_samples))
