"""Mid-epoch resume for map-style train data: an epoch order fixed by ``(seed, epoch)``, minus what a checkpoint consumed.

Lightning 2.6 restores the fit loop's epoch and batch counters from a checkpoint, but not a plain
``DataLoader``: its epoch starts over (Lightning only warns that the loader "is not resumable"), so a
run resumed mid-epoch would train on that epoch's first batches again and never on its last ones.
Here:

* the train order is a pure function of ``(seed, epoch)``: :class:`ResumableSampler` with
  ``shuffle=True`` is ``DistributedSampler``'s permutation (``randperm`` seeded with ``seed + epoch``),
  each DDP rank taking its disjoint share; Lightning calls ``set_epoch`` at every epoch start;
* a DataModule with :class:`ResumableTrainData` puts the number of train batches done in the current
  epoch into its checkpoint state, and its first train sampler after a resume leaves out that many
  batches' indices, so they are never loaded;
* data transformed at random per item in loader workers takes ``(epoch, index)`` pairs
  (``with_epoch=True``) and seeds each item from them (:mod:`recipes.data.seeded_items`).
"""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Iterator
from typing import Any

import torch
from torch.utils.data import Dataset, DistributedSampler


class ResumableSampler(DistributedSampler):
    """This rank's share of the dataset's indices; the next iteration leaves out its first ``skip`` of them.

    A ``DistributedSampler``, so Lightning keeps it under DDP (instead of inserting its own) and calls
    ``set_epoch``. Rank and world size come from ``torch.distributed`` when it is initialised.
    Subclasses change the order by overriding :meth:`indices`. ``with_epoch=True`` yields
    ``(epoch, index)`` pairs, so the epoch reaches the dataset inside loader workers too.
    """

    def __init__(
        self,
        dataset: Dataset,
        *,
        shuffle: bool = True,
        seed: int = 0,
        skip: int = 0,
        num_replicas: int | None = None,
        rank: int | None = None,
        with_epoch: bool = False,
    ) -> None:
        dist = torch.distributed
        initialised = dist.is_available() and dist.is_initialized()
        num_replicas = num_replicas if num_replicas is not None else (dist.get_world_size() if initialised else 1)
        rank = rank if rank is not None else (dist.get_rank() if initialised else 0)
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=shuffle, seed=seed)
        self.skip, self.with_epoch = skip, with_epoch

    def indices(self) -> Iterator[int]:
        """This rank's indices for ``self.epoch``, in order (``DistributedSampler``'s)."""
        return super().__iter__()

    def __iter__(self) -> Iterator[int] | Iterator[tuple[int, int]]:
        skip, self.skip = self.skip, 0  # a resume skips once; later epochs are whole
        indices = itertools.islice(self.indices(), skip, None)
        return zip(itertools.repeat(self.epoch), indices) if self.with_epoch else indices


def batches_done_in_epoch(trainer: Any) -> int:
    """Train batches done in the current epoch; 0 once its last one is (a resume then starts the next epoch)."""
    done = trainer.fit_loop.epoch_loop.batch_progress.current.processed
    return 0 if done >= trainer.num_training_batches else done


class ResumableTrainData:
    """LightningDataModule mixin: mid-epoch resume of the train loader (list it before ``LightningDataModule``).

    Needs ``self.batch_size`` and ``self.seed``; the train loader takes its sampler from
    :meth:`train_sampler` (or its skip from :meth:`take_resume_skip`).
    """

    _resume_batches = 0  # train batches of the current epoch already done (from a checkpoint)
    trainer: Any
    batch_size: int
    seed: int

    def state_dict(self) -> dict[str, Any]:
        """Train batches done in the current epoch, so a mid-epoch resume continues with the next one."""
        if self.trainer is None:
            return {}
        return {"train_batches_done": batches_done_in_epoch(self.trainer)}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        # Lightning restores the DataModule before it asks for the train loader, which applies the skip.
        self._resume_batches = int(state_dict.get("train_batches_done", 0))
        # Lightning then warns that the *loader* cannot resume mid-epoch; this DataModule does it instead.
        warnings.filterwarnings("ignore", message="You're resuming from a checkpoint that ended before the epoch ended")

    def take_resume_skip(self) -> int:
        """Train indices (of this rank) the next train loader must leave out; 0 from then on."""
        skip, self._resume_batches = self._resume_batches * self.batch_size, 0
        return skip

    def train_sampler(self, dataset: Dataset, with_epoch: bool = False) -> ResumableSampler:
        """The seeded, per-epoch shuffle over ``dataset``, skipping what a resumed checkpoint already consumed."""
        skip = self.take_resume_skip()
        return ResumableSampler(dataset, shuffle=True, seed=self.seed, skip=skip, with_epoch=with_epoch)
