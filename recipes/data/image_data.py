"""Image-classification DataModules: Fashion-MNIST, CIFAR-10/100 (in memory) and ImageNet (per item).

Loaders yield ``(uint8 images [B,C,H,W], int64 labels [B])``; :meth:`ImageClassificationData.on_after_batch_transfer`
augments (train only) and normalises on the batch's device, so the model gets float32.

Resumes exactly, mid-epoch too: the train order is a function of ``(seed, epoch)`` and a checkpoint
records the batches done (:mod:`recipes.data.resume`); a train batch's crops and flips are a function
of ``(seed, epoch, batch, rank)``, and a per-item random transform in the loader (ImageNet's crop) one of
``(seed, epoch, index)`` (:mod:`recipes.data.seeded_items`).
"""

from __future__ import annotations

import os
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Subset, TensorDataset

from ..values import check_range
from . import fmnist, hub
from .augment import STATS, augment, normalize
from .resume import ResumableTrainData
from .seeded_items import SeededItems
from .windows import mix

AUGMENT_STREAM = 0xA06  # so a batch's crop/flip seed differs from its step seed (RunState mixes the same numbers)


class ImageClassificationData(ResumableTrainData, pl.LightningDataModule):
    """Base of the image DataModules; subclasses implement :meth:`build_datasets`.

    Args:
        batch_size: samples per batch (per device).
        num_workers: loader worker processes (0 suits in-memory data).
        augment: random pad-crop + horizontal flip on train batches.
        crop_padding: zero padding of that crop in pixels (default: the dataset's, e.g. 4 for 32x32 CIFAR);
            0 keeps only the flips.
        val_fraction: share of train held out as val (deterministic given ``seed``); 0 uses test as val.
        seed: seeds the hold-out, the train order (per epoch) and the augmentation (per batch).
        limit_train_samples: keep only this many train samples (quick tests).
        path: local data instead of the default source (see the subclass).
        cache_dir: cache for decoded images (default ``$RESBLOCKS_CACHE`` or ``~/.cache/resblocks``).
    """

    name: str = ""
    num_classes: int = 0
    in_chans: int = 3
    image_size: int = 0
    crop_padding: int = 4
    random_per_item: bool = False  # train items are transformed at random as loaded: seed each one

    def __init__(
        self,
        *,
        batch_size: int = 128,
        num_workers: int = 0,
        augment: bool = True,
        crop_padding: int | None = None,
        val_fraction: float = 0.1,
        seed: int = 0,
        limit_train_samples: int | None = None,
        path: str | None = None,
        cache_dir: str | None = None,
    ) -> None:
        super().__init__()
        check_range("data.val_fraction", val_fraction, ge=0, lt=1)
        check_range("data.batch_size", batch_size, ge=1)
        check_range("data.num_workers", num_workers, ge=0)
        check_range("data.crop_padding", crop_padding, ge=0, null="for the dataset's default")
        if crop_padding is not None:
            self.crop_padding = crop_padding
        check_range("data.limit_train_samples", limit_train_samples, ge=1, null="for all")
        self.batch_size, self.num_workers, self.augment = batch_size, num_workers, augment
        self.val_fraction, self.seed, self.limit_train_samples = val_fraction, seed, limit_train_samples
        self.path, self.cache_dir = path, cache_dir
        self.mean, self.std = (
            STATS[self.name] if self.name in STATS else ((0.5,) * self.in_chans, (0.5,) * self.in_chans)
        )
        self.class_names: list[str] = [str(i) for i in range(self.num_classes)]
        self.train_set: Dataset | None = None
        self.val_set: Dataset | None = None
        self.test_set: Dataset | None = None
        self._generators: dict[torch.device, torch.Generator] = {}

    # ------------------------------------------------------------------ data

    def build_datasets(self) -> tuple[Dataset, Dataset, Dataset]:
        """``(train, train_eval, test)``: train-mode and eval-mode views of the train split (the
        val hold-out is taken from the eval view), and the test split."""
        raise NotImplementedError

    def holdout(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """``(train indices, val indices)`` of a train split of size ``n``: a seeded permutation."""
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(self.seed)).numpy()
        n_val = round(self.val_fraction * n)
        return np.sort(perm[n_val:]), np.sort(perm[:n_val])

    def setup(self, stage: str | None = None) -> None:
        """Load the splits once (every rank), hold out val, apply ``limit_train_samples``."""
        if self.train_set is not None:
            return
        train, train_eval, test = self.build_datasets()
        n = len(train)  # type: ignore[arg-type]
        if self.val_fraction > 0:
            train_idx, val_idx = self.holdout(n)
            self.val_set = Subset(train_eval, val_idx.tolist())
        else:
            train_idx = np.arange(n)
            self.val_set = test
        if self.limit_train_samples is not None:
            train_idx = train_idx[: self.limit_train_samples]
        self.train_set = Subset(train, train_idx.tolist()) if len(train_idx) < n else train
        self.test_set = test

    # ------------------------------------------------------------------ loaders

    def _loader(self, ds: Dataset | None, train: bool) -> DataLoader:
        if ds is None:
            raise RuntimeError(f"{type(self).__name__}: call setup() before asking for a dataloader")
        per_item = train and self.random_per_item
        return DataLoader(
            SeededItems(ds, self.seed) if per_item else ds,
            batch_size=self.batch_size,
            sampler=self.train_sampler(ds, with_epoch=per_item) if train else None,
            drop_last=train,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            pin_memory=torch.cuda.is_available(),
            generator=torch.Generator().manual_seed(self.seed) if train else None,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_set, train=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_set, train=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.test_set, train=False)

    # ------------------------------------------------------------------ on device

    def _generator(self, device: torch.device) -> torch.Generator:
        if device not in self._generators:
            rank = self.trainer.global_rank if self.trainer is not None else 0
            self._generators[device] = torch.Generator(device=device).manual_seed(self.seed * 1000003 + rank)
        return self._generators[device]

    def batch_generator(self, device: torch.device) -> torch.Generator:
        """The augmentation generator seeded for the train batch being transferred: a function of
        ``(seed, epoch, batch, rank)``, not of what ran before (so a resumed run draws the same crops)."""
        trainer = self.trainer
        batch = trainer.fit_loop.epoch_loop.batch_progress.current.ready  # Lightning counts it once transferred
        seed = mix(mix(mix(mix(self.seed, trainer.current_epoch), batch), trainer.global_rank), AUGMENT_STREAM)
        return self._generator(device).manual_seed(seed % 2**63)  # sets host-side state: no device sync

    def transform_batch(
        self, batch: tuple[torch.Tensor, torch.Tensor], train: bool, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Augment (if ``train`` and enabled) and normalise a uint8 batch; labels pass through.

        ``generator``: the augmentation's; default, this DataModule's own per device (seeded once).
        """
        x, y = batch
        if train and self.augment:
            x = augment(x, padding=self.crop_padding, flip=True, generator=generator or self._generator(x.device))
        return normalize(x, self.mean, self.std), y

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        training = self.trainer is not None and self.trainer.training
        generator = self.batch_generator(batch[0].device) if training and self.augment else None
        return self.transform_batch(batch, train=training, generator=generator)


class InMemoryImageData(ImageClassificationData):
    """Image data held as uint8 tensors; subclasses implement :meth:`load_arrays`."""

    def load_arrays(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """``{"train"|"test": (uint8 [N,H,W,C] or [N,H,W], int64 [N])}``."""
        raise NotImplementedError

    def prepare_data(self) -> None:
        # Rank 0 decodes and fills the .npy cache before the other ranks read it in setup().
        self.load_arrays()

    def build_datasets(self) -> tuple[Dataset, Dataset, Dataset]:
        arrays = self.load_arrays()
        tensors = {}
        for split, (x, y) in arrays.items():
            x = torch.from_numpy(np.ascontiguousarray(x))
            x = x.unsqueeze(1) if x.dim() == 3 else x.permute(0, 3, 1, 2).contiguous()
            tensors[split] = TensorDataset(x, torch.from_numpy(np.asarray(y, dtype=np.int64)))
        test = tensors["test"] if "test" in tensors else tensors.get("validation")
        if test is None:
            raise ValueError(f"{self.name}: the source has no test split (found {sorted(arrays)})")
        return tensors["train"], tensors["train"], test


class FashionMNISTData(InMemoryImageData):
    """Fashion-MNIST 28x28x1, 10 classes: IDX files from ``path=`` or the Debian package, else the hub.

    Augmentation is off by default (most published FMNIST baselines use none).
    """

    name, num_classes, in_chans, image_size = "fmnist", 10, 1, 28

    def __init__(self, *, augment: bool = False, **kwargs: Any) -> None:
        super().__init__(augment=augment, **kwargs)
        self.class_names = list(fmnist.CLASSES)

    def prepare_data(self) -> None:
        pass  # reading the IDX files takes 0.3 s: no cache to warm

    def load_arrays(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        return fmnist.load_arrays(self.path, self.cache_dir)


class _HubImageData(InMemoryImageData):
    def load_arrays(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        arrays, names = hub.image_arrays(self.name, self.path, self.cache_dir)
        if names:
            self.class_names = names
        return arrays


class CIFAR10Data(_HubImageData):
    """CIFAR-10 32x32x3: hub ``uoft-cs/cifar10`` (``img``, ``label``) or the same parquet via ``path=``.

    ``val_fraction=0.1`` holds out 5k of the 50k train images, as in the ResNet paper.
    """

    name, num_classes, in_chans, image_size = "cifar10", 10, 3, 32


class CIFAR100Data(_HubImageData):
    """CIFAR-100 32x32x3, fine labels: hub ``uoft-cs/cifar100`` (``img``, ``fine_label``) or parquet via ``path=``."""

    name, num_classes, in_chans, image_size = "cifar100", 100, 3, 32


class ImageNetData(ImageClassificationData):
    """ImageNet-1k decoded per item in workers: imagefolder or parquet via ``path=``, else hub ``ILSVRC/imagenet-1k``.

    Train items get a random-resized crop, seeded per item from ``(seed, epoch, index)``; eval items
    resize + centre crop to ``image_size``; the flip is batched on device. ``val_fraction=0`` (default)
    validates on the official val split.
    """

    name, num_classes, in_chans = "imagenet", 1000, 3
    crop_padding = 0  # the random-resized crop already happened per item
    random_per_item = True

    def __init__(
        self,
        *,
        image_size: int = 224,
        num_workers: int = min(8, os.cpu_count() or 1),
        val_fraction: float = 0.0,
        batch_size: int = 256,
        **kwargs: Any,
    ) -> None:
        super().__init__(num_workers=num_workers, val_fraction=val_fraction, batch_size=batch_size, **kwargs)
        check_range("data.image_size", image_size, ge=1)
        self.image_size = image_size

    def build_datasets(self) -> tuple[Dataset, Dataset, Dataset]:
        splits, names = hub.imagenet_datasets(self.path, self.image_size)
        self.class_names, self.num_classes = names, len(names)
        train, train_eval = splits["train"]
        test = (splits.get("validation") or splits.get("test") or (None, None))[1]
        if test is None:
            if self.val_fraction == 0:
                raise ValueError("imagenet: the source has no val split; set data.val_fraction > 0")
            test = Subset(train_eval, self.holdout(len(train))[1].tolist())
        return train, train_eval, test
