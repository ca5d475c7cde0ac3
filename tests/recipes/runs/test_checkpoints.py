"""Checkpoint writing: atomic files, RNG state round trip, last.ckpt at the true final step."""

from __future__ import annotations

import random

import numpy as np
import torch
from recipe_helpers import run, tiny

from recipes.runs.checkpoints import AtomicCheckpointIO, rng_state, seed_batch, set_rng_state


def test_atomic_save_replaces_the_target_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "ckpts" / "last.ckpt"
    io = AtomicCheckpointIO()
    io.save_checkpoint({"step": 1}, target)
    io.save_checkpoint({"step": 2}, target)
    assert torch.load(target, weights_only=True) == {"step": 2}
    assert [p.name for p in target.parent.iterdir()] == ["last.ckpt"]


def test_rng_states_round_trip_and_load_weights_only(tmp_path):
    torch.manual_seed(1), np.random.seed(1), random.seed(1)
    torch.save({"rng": rng_state()}, tmp_path / "rng.pt")
    expected = (torch.rand(3), np.random.rand(3), random.random())
    torch.manual_seed(2), np.random.seed(2), random.seed(2)
    set_rng_state(torch.load(tmp_path / "rng.pt", weights_only=True)["rng"])  # plain types and tensors only
    got = (torch.rand(3), np.random.rand(3), random.random())
    assert torch.equal(got[0], expected[0]) and np.array_equal(got[1], expected[1]) and got[2] == expected[2]


def test_last_checkpoint_is_the_final_step_between_periodic_saves(tiny_data, tmp_path):
    tiny_gpt = ["+model.depth=1", "+model.dim=32", "+model.heads=2", "data.val_batches=1", "sample.tokens=0"]
    steps = ["trainer.max_steps=4", "checkpoint.every_n_steps=3", "trainer.val_check_interval=2", "checkpoint.keep=-1"]
    run(tiny("shakespeare_gpt", tiny_data, tmp_path, *tiny_gpt, *steps))
    ckpts = tmp_path / "checkpoints"
    assert torch.load(ckpts / "last.ckpt", weights_only=True)["global_step"] == 4
    names = sorted(p.name for p in ckpts.iterdir())
    assert "step00000003.ckpt" in names and any(n.startswith("best-step") for n in names)


def _draws() -> tuple:
    return torch.rand(4), np.random.rand(2), random.random(), torch.randint(0, 2**30, (3,))


def test_seed_batch_on_the_cpu_draws_what_the_all_device_seed_draws():
    seed_batch(3, 1, 7, 0)
    full = _draws()
    seed_batch(3, 1, 7, 0, cpu_only=True)  # the CPU generator alone (a CPU run's per-batch seed)
    cpu = _draws()
    seed_batch(3, 1, 8, 0, cpu_only=True)
    other = _draws()
    assert all(torch.equal(a, b) if torch.is_tensor(a) else np.array_equal(a, b) for a, b in zip(full, cpu))
    assert not torch.equal(cpu[0], other[0]) and cpu[2] != other[2]  # another batch, another seed
