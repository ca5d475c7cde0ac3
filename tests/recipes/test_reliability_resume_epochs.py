"""Reliability 1 for shuffled data: image and text-classification runs resumed from a checkpoint taken in the middle
of an epoch end with the weights of an uninterrupted run, and log every step once.

An epoch is 5 batches and checkpoints come every 4 steps, so the checkpoint the crashed run resumes from (step 8)
lies inside epoch 1: the resumed run must replay the rest of that epoch's permutation (not restart it, nor epoch
0's), then epoch 2's; the image run also augments (random crops and flips) and has dropout-free BatchNorm nets.
Epoch 1's train/acc must also count the 3 batches before the checkpoint.
"""

from __future__ import annotations

import pytest
import torch
from lightning.pytorch.callbacks import Callback
from recipe_helpers import compose, csv_rows, tiny
from reliability_helpers import Crash, CrashAt, one_thread  # noqa: F401  (autouse: one torch thread)

STEPS, CRASH, EPOCH = 13, 10, 5
COMMON = [
    f"trainer.max_steps={STEPS}", f"trainer.limit_train_batches={EPOCH}", "trainer.limit_val_batches=1",
    "trainer.val_check_interval=6", "trainer.check_val_every_n_epoch=null", "trainer.log_every_n_steps=1",
    "trainer.deterministic=true", "trainer.precision=32-true", "checkpoint.every_n_steps=4", "checkpoint.monitor=null",
    "test=false",
]  # fmt: skip
CASES = {
    "fmnist_resnet20": ["data.augment=true"],
    "shakespeare_genre": ["model.depth=1", "model.dim=32", "model.heads=2"],
}


class Batches(Callback):
    """The (epoch, batch index, first input row) of every training step, and the train/acc accumulator's state
    (correct/wrong counts) at every epoch's end."""

    def __init__(self) -> None:
        self.seen: list[tuple[int, int, torch.Tensor]] = []
        self.acc_states: list[list[int]] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.seen.append((trainer.current_epoch, batch_idx, batch[0][0].clone()))

    def on_train_epoch_end(self, trainer, pl_module):  # before Lightning resets the epoch's metrics
        self.acc_states.append([v.sum().item() for v in pl_module.metrics["train_acc"].metric_state.values()])


def last(run_dir):
    return torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)


@pytest.mark.parametrize("recipe", sorted(CASES))
def test_resume_from_a_mid_epoch_checkpoint_is_exact(recipe, tiny_data, tmp_path):
    from recipes.train import train

    def overrides(run_dir, *extra):
        return compose(tiny(recipe, tiny_data, run_dir, *COMMON, *CASES[recipe], *extra))

    straight, crashed, resumed = Batches(), Batches(), Batches()
    train(overrides(tmp_path / "straight"), callbacks=[straight])
    run_dir = tmp_path / "crashed"
    with pytest.raises(Crash):
        train(overrides(run_dir), callbacks=[CrashAt(CRASH), crashed])
    ckpt = last(run_dir)
    loop = ckpt["loops"]["fit_loop"]
    assert ckpt["global_step"] == 8 and loop["epoch_progress"]["current"]["completed"] == 1  # epoch 1 ...
    assert loop["epoch_loop.batch_progress"]["current"]["processed"] == 8 - EPOCH  # ... 3 batches in
    summary = train(overrides(run_dir, "resume=auto"), callbacks=[resumed])
    assert summary.resumed_from and summary.steps == STEPS

    # The resumed run saw exactly the uninterrupted run's batches from step 8 on (same epoch, index and data).
    assert [(e, i) for e, i, _ in resumed.seen] == [(e, i) for e, i, _ in straight.seen[8:]]
    assert all(torch.equal(a, b) for (_, _, a), (_, _, b) in zip(resumed.seen, straight.seen[8:]))
    got, want = last(run_dir)["state_dict"], last(tmp_path / "straight")["state_dict"]
    worst = max((got[k].float() - want[k].float()).abs().max().item() for k in want)
    assert worst <= 1e-6, f"weights differ by {worst}"
    assert [int(r["step"]) for r in csv_rows(run_dir) if r.get("train/loss")] == list(range(STEPS))
    val = [[int(r["step"]) for r in csv_rows(d) if r.get("val/loss")] for d in (run_dir, tmp_path / "straight")]
    assert val[0] == val[1] and val[0]
    # The epoch-level train/acc of the epoch the resume fell into covers all its batches (its accumulator was in
    # the checkpoint), not only those after the resume: the same counts and value at each epoch's end as uninterrupted.
    assert resumed.acc_states == straight.acc_states[1:] and len(resumed.acc_states) == 2
    acc = [
        [(r["step"], r["train/acc"]) for r in csv_rows(d) if r.get("train/acc")]
        for d in (run_dir, tmp_path / "straight")
    ]
    assert acc[0] == acc[1] and len(acc[0]) == 3, acc


def test_train_accuracy_accumulator_is_saved_mid_epoch_only():
    """Mid-epoch, a checkpoint carries train/acc's counts to rank 0 of the resumed run (other ranks start from zero,
    so the epoch's sum over ranks counts them once); at an epoch's last batch it carries nothing (the next starts)."""
    from types import SimpleNamespace

    from recipes.modules import ImageClassifier

    progress = SimpleNamespace(processed=2)
    loop = SimpleNamespace(epoch_loop=SimpleNamespace(batch_progress=SimpleNamespace(current=progress)))

    def module(rank: int = 0) -> ImageClassifier:
        m = ImageClassifier(torch.nn.Identity(), num_classes=3)
        m._trainer = SimpleNamespace(fit_loop=loop, num_training_batches=5, global_rank=rank)
        return m

    before = module()
    before.metrics["train_acc"](torch.eye(3), torch.tensor([0, 1, 1]))  # 2 of 3 right
    ckpt: dict = {}
    before.on_save_checkpoint(ckpt)
    rank0, rank1 = module(0), module(1)
    for m in (rank0, rank1):
        m.on_load_checkpoint(ckpt)
    assert rank0.metrics["train_acc"].compute().item() == pytest.approx(2 / 3)
    rank1.metrics["train_acc"](torch.eye(3)[:1], torch.tensor([0]))
    assert rank1.metrics["train_acc"].compute().item() == 1.0  # its own batch only
    progress.processed = 5
    ckpt = {}
    before.on_save_checkpoint(ckpt)
    assert ckpt == {}
