"""The DataModules inside a real (CPU, tiny) Lightning fit: hooks, dtypes, per-epoch windows, RNG state."""

from __future__ import annotations

import lightning.pytorch as pl
import pytest
import torch
from data_helpers import STORY

from recipes.data import build_datamodule


class Probe(pl.LightningModule):
    """Records what the model is fed; learns nothing useful."""

    def __init__(self) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(()))
        self.seen: list[tuple[str, int, torch.Tensor]] = []

    def _step(self, stage: str, batch) -> torch.Tensor:
        x = batch[0]
        self.seen.append((stage, self.current_epoch, x.clone()))
        return (self.w * x.float().mean()) ** 2 + self.w

    def training_step(self, batch, idx):
        return self._step("train", batch)

    def validation_step(self, batch, idx):
        self._step("val", batch)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def fit(dm, epochs: int = 1, batches: int = 2) -> Probe:
    model = Probe()
    trainer = pl.Trainer(
        max_epochs=epochs,
        limit_train_batches=batches,
        limit_val_batches=1,
        num_sanity_val_steps=0,
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(model, datamodule=dm)
    return model


def test_image_batches_reach_the_model_as_normalised_floats(idx_dir):
    dm = build_datamodule("fmnist", path=str(idx_dir), batch_size=8, augment=True, val_fraction=0.2)
    model = fit(dm)
    stages = {s for s, _, _ in model.seen}
    assert stages == {"train", "val"}
    for stage, _, x in model.seen:
        assert x.dtype == torch.float32 and x.shape[1:] == (1, 28, 28)
        assert x.min() >= -0.2860 / 0.3530 - 1e-5 and x.max() <= (1 - 0.2860) / 0.3530 + 1e-5
    # Val batches are not augmented: they equal the normalised hold-out images.
    val_x = torch.stack([dm.val_set[i][0] for i in range(len(dm.val_set))])  # 6 images: one batch
    assert torch.allclose(model.seen[-1][2], (val_x.float() / 255 - 0.2860) / 0.3530)
    # The checkpointed state is the train position (batches done in the current epoch).
    assert dm.state_dict() == {"train_batches_done": 0}  # the epoch ended


def at(dm, epoch: int, batch: int):
    """``dm`` as Lightning's fit loop shows it while transferring train batch ``batch`` of ``epoch``."""
    from types import SimpleNamespace

    progress = SimpleNamespace(current=SimpleNamespace(ready=batch))
    fit_loop = SimpleNamespace(epoch_loop=SimpleNamespace(batch_progress=progress))
    dm.trainer = SimpleNamespace(training=True, current_epoch=epoch, global_rank=0, fit_loop=fit_loop)
    return dm


def test_augmentation_is_a_function_of_the_batch_position(idx_dir):
    dm = build_datamodule("fmnist", path=str(idx_dir), augment=True)
    batch = (torch.randint(0, 256, (16, 1, 28, 28), dtype=torch.uint8), torch.zeros(16, dtype=torch.int64))
    a = at(dm, 1, 3).on_after_batch_transfer(batch, 0)[0]
    for epoch, b in ((0, 0), (1, 2), (1, 4)):  # other batches in between: no effect on batch (1, 3)
        assert not torch.equal(at(dm, epoch, b).on_after_batch_transfer(batch, 0)[0], a)
    fresh = build_datamodule("fmnist", path=str(idx_dir), augment=True)  # a resumed run's DataModule
    assert torch.equal(at(fresh, 1, 3).on_after_batch_transfer(batch, 0)[0], a)
    assert torch.equal(at(dm, 1, 3).on_after_batch_transfer(batch, 0)[0], a)
    unaugmented = dm.transform_batch(batch, train=False)[0]
    assert not torch.equal(a, unaugmented) and a.shape == unaugmented.shape


def test_lm_windows_change_with_epoch(tmp_path):
    (tmp_path / "input.txt").write_text(STORY * 30)
    dm = build_datamodule(
        "text_files", path=str(tmp_path / "input.txt"), block_size=16, batch_size=4, samples_per_epoch=8
    )
    model = fit(dm, epochs=2, batches=2)
    train = [(e, x) for s, e, x in model.seen if s == "train"]
    assert [e for e, _ in train] == [0, 0, 1, 1]
    assert all(x.dtype == torch.int64 and x.shape == (4, 16) for _, x in train)
    assert not torch.equal(train[0][1], train[2][1])  # Lightning's set_epoch reached the sampler
    # The same seed replays exactly the same data.
    again = fit(
        build_datamodule(
            "text_files", path=str(tmp_path / "input.txt"), block_size=16, batch_size=4, samples_per_epoch=8
        ),
        2,
        2,
    )
    assert all(torch.equal(a, b) for (_, _, a), (_, _, b) in zip(model.seen, again.seen))


def test_lm_mid_epoch_resume_is_exact(tmp_path):
    from lightning.pytorch.callbacks import ModelCheckpoint

    (tmp_path / "input.txt").write_text(STORY * 30)

    def dm():
        return build_datamodule(
            "text_files", path=str(tmp_path / "input.txt"), block_size=16, batch_size=4, samples_per_epoch=16
        )

    full = fit(dm(), epochs=2, batches=4)
    reference = [x for s, _, x in full.seen if s == "train"]
    assert len(reference) == 8

    ckpt = ModelCheckpoint(dirpath=tmp_path / "ckpt", every_n_train_steps=2, save_top_k=-1, filename="{step}")
    kwargs = {
        "max_epochs": 2,
        "limit_train_batches": 4,
        "limit_val_batches": 1,
        "num_sanity_val_steps": 0,
        "accelerator": "cpu",
        "devices": 1,
        "logger": False,
        "enable_progress_bar": False,
        "enable_model_summary": False,
    }
    pl.Trainer(callbacks=[ckpt], **kwargs).fit(Probe(), datamodule=dm())
    resumed = Probe()
    pl.Trainer(enable_checkpointing=False, **kwargs).fit(
        resumed, datamodule=dm(), ckpt_path=tmp_path / "ckpt" / "step=2.ckpt"
    )
    replay = [x for s, _, x in resumed.seen if s == "train"]
    assert len(replay) == 6 and all(torch.equal(a, b) for a, b in zip(replay, reference[2:]))


def shifts_seen(augmented: torch.Tensor, original: torch.Tensor, max_shift: int) -> set[int]:
    """Per sample, the largest |offset| of the pad-crop window (of the image or of its mirror) it matches."""
    import torch.nn.functional as F

    p = max_shift
    seen = set()
    for a, x in zip(augmented, original):
        padded = [F.pad(v, (p, p, p, p)) for v in (x, x.flip(-1))]
        hits = [
            max(abs(dy - p), abs(dx - p))
            for v in padded
            for dy in range(2 * p + 1)
            for dx in range(2 * p + 1)
            if torch.equal(v[:, dy : dy + 28, dx : dx + 28], a)
        ]
        assert hits, "an augmented image is no window of the padded image or its flip"
        seen.add(min(hits))
    return seen


def test_crop_padding_sets_the_largest_shift(idx_dir):
    x = torch.randint(1, 256, (64, 1, 28, 28), dtype=torch.uint8)  # no zero pixels: every shift is visible
    batch = (x, torch.zeros(64, dtype=torch.int64))

    def augmented(**options):
        dm = build_datamodule("fmnist", path=str(idx_dir), augment=True, **options)
        out = at(dm, 0, 0).on_after_batch_transfer(batch, 0)[0]
        return ((out * 0.3530 + 0.2860) * 255).round().to(torch.uint8)  # undo the normalisation

    assert shifts_seen(augmented(crop_padding=0), x, max_shift=4) == {0}  # flips only
    assert shifts_seen(augmented(crop_padding=2), x, max_shift=4) == {0, 1, 2}
    assert max(shifts_seen(augmented(), x, max_shift=4)) > 2  # the dataset's default, 4
    with pytest.raises(ValueError, match="data.crop_padding"):
        build_datamodule("fmnist", path=str(idx_dir), augment=True, crop_padding=-1)
