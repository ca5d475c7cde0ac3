"""Per-item random transforms that are a pure function of ``(seed, epoch, index)``, wherever the item is loaded.

A DataLoader seeds each worker's ``torch``/``random``/NumPy generators once, from its base seed and the
worker id, so a per-item random transform (ImageNet's random-resized crop, or any torchvision/timm
transform) depends on which worker loads the item and on how many items that worker drew before. A
mid-epoch resume skips the consumed batches, so the remaining items fall to other workers at other
positions and get other crops. Instead the train sampler yields ``(epoch, index)`` pairs
(``ResumableSampler(with_epoch=True)``) and :class:`SeededItems` seeds the three host generators from
``hash(seed, epoch, index)`` right before loading the item.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, get_worker_info

from .windows import mix

ITEM_STREAM = 0x17E  # so an item's seed differs from a batch's or a step's seed built from the same numbers


@contextmanager
def host_rng_preserved() -> Iterator[None]:
    """Restore the ``random``, NumPy and torch CPU generators on exit (the training loop's streams)."""
    py, np_state, cpu = random.getstate(), np.random.get_state(), torch.get_rng_state()
    try:
        yield
    finally:
        random.setstate(py)
        np.random.set_state(np_state)
        torch.set_rng_state(cpu)


def seed_host_rngs(seed: int) -> None:
    """Seed ``random``, NumPy and torch's CPU generator (not CUDA's: transforms run on the host)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.default_generator.manual_seed(seed % 2**63)


class SeededItems(Dataset):
    """``dataset`` indexed by ``(epoch, index)``: item ``index``, loaded with the host generators seeded
    from ``(seed, epoch, index)``.

    In a loader worker the generators are just re-seeded (the worker's streams serve only its items);
    in the main process (``num_workers=0``) they are restored afterwards, so the training loop's own
    streams do not depend on the data. A plain ``int`` key (a sampler Lightning substituted, e.g. for
    ``overfit_batches``) counts as epoch 0.
    """

    def __init__(self, dataset: Dataset, seed: int) -> None:
        self.dataset, self.seed = dataset, seed

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, key: tuple[int, int] | int) -> Any:
        epoch, index = key if isinstance(key, tuple) else (0, key)
        seed = mix(mix(mix(self.seed, epoch), index), ITEM_STREAM)
        if get_worker_info() is not None:
            seed_host_rngs(seed)
            return self.dataset[index]
        with host_rng_preserved():
            seed_host_rngs(seed)
            return self.dataset[index]
