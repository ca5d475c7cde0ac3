"""The resumable train order (recipes/data/resume.py): a function of (seed, epoch), split over ranks, skippable once;
per-item random transforms (recipes/data/seeded_items.py): a function of (seed, epoch, index)."""

from __future__ import annotations

import random

import torch

from recipes.data.resume import ResumableSampler


def order(epoch: int, seed: int = 3, rank: int = 0, world: int = 1, skip: int = 0, n: int = 10) -> list[int]:
    sampler = ResumableSampler(list(range(n)), seed=seed, skip=skip, num_replicas=world, rank=rank)
    sampler.set_epoch(epoch)
    return list(sampler)


def test_order_is_a_seeded_permutation_per_epoch():
    assert sorted(order(0)) == list(range(10))
    assert order(0) == order(0) and order(2) == order(2)  # new samplers (a resumed run) agree
    assert order(0) != order(1) and order(0) != order(0, seed=4)
    # The same permutation DistributedSampler (and RandomSampler, at epoch 0) draws for this seed.
    assert order(1) == torch.randperm(10, generator=torch.Generator().manual_seed(3 + 1)).tolist()


def test_ranks_share_one_permutation_disjointly():
    shares = [order(1, rank=r, world=2) for r in (0, 1)]
    assert not set(shares[0]) & set(shares[1]) and sorted(shares[0] + shares[1]) == list(range(10))
    assert shares[0] == order(1)[0::2] and shares[1] == order(1)[1::2]  # strided, as DistributedSampler


def test_skip_applies_to_the_next_iteration_only():
    sampler = ResumableSampler(list(range(10)), seed=3, skip=4)
    sampler.set_epoch(1)
    assert list(sampler) == order(1)[4:]  # the resumed epoch: what the checkpoint had not consumed
    sampler.set_epoch(2)
    assert list(sampler) == order(2)  # later epochs are whole
    assert order(1, rank=1, world=2, skip=2) == order(1, rank=1, world=2)[2:]  # per rank


def test_imagenet_crops_are_a_function_of_seed_epoch_and_index(tiny_data):
    """A random-resized crop depends on (seed, epoch, index) only: not on the worker, the position in the epoch, a
    resume's skip, nor the main process's RNG streams (which loading in the main process leaves as they were)."""
    from recipes.data import build_datamodule
    from recipes.data.seeded_items import SeededItems

    dm = build_datamodule("imagenet", path=str(tiny_data["imagenet"]), image_size=16, batch_size=2, seed=5)
    dm.setup("fit")

    def epoch_images(epoch: int, skip_batches: int = 0, workers: int = 0) -> torch.Tensor:
        dm.num_workers, dm._resume_batches = workers, skip_batches
        loader = dm.train_dataloader()
        loader.sampler.set_epoch(epoch)
        return torch.cat([x for x, _ in loader])

    rng_before, py_before = torch.get_rng_state(), random.getstate()
    whole = epoch_images(1)  # in the main process
    assert torch.equal(torch.get_rng_state(), rng_before) and random.getstate() == py_before
    assert torch.equal(epoch_images(1, skip_batches=1, workers=2), whole[2:])  # resumed, in workers
    items = SeededItems(dm.train_set, dm.seed)
    assert all(torch.equal(whole[k], items[(1, i)][0]) for k, i in enumerate(order(1, seed=5, n=len(whole))))
    assert not torch.equal(items[(1, 0)][0], items[(2, 0)][0])  # each epoch crops afresh
