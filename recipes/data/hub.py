"""Loaders for the hub datasets: CIFAR-10/100, ImageNet, Fashion-MNIST (hub copy), TinyStories, WikiText-103.

Each one reads the same format from ``path=`` (parquet file/dir, ``save_to_disk`` dir, or an
imagefolder tree for ImageNet) or from the hub. Small image datasets are decoded ONCE to uint8
and cached as ``.npy`` under the cache dir, so a second run does not decode again. ImageNet
is too big for memory: :class:`LazyImageDataset` decodes per item in the loader workers.
"""

from __future__ import annotations

import io
import math
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .sources import (
    IMAGE_SUFFIXES,
    SPLIT_ALIASES,
    DataError,
    DataNotFoundError,
    atomic_save_npy,
    cache_root,
    check_path,
    files_fingerprint,
    hash_key,
    load_hub,
    load_local_table,
    local_format,
    parquet_splits,
)

if TYPE_CHECKING:  # pragma: no cover
    import datasets
    import torch


@dataclass(frozen=True)
class HubSpec:
    """Where a dataset lives on the hub and which columns hold what."""

    name: str  # registry name, used in messages
    repo: str
    config: str | None
    columns: tuple[str, ...]  # (image, label) or (text,)
    num_classes: int = 0
    in_chans: int = 3
    hint: str = "pass data.path=/dir/with/parquet (same columns) or run once online to fill the HF cache"


IMAGE_SPECS: dict[str, HubSpec] = {
    "fmnist": HubSpec(
        "fmnist",
        "zalando-datasets/fashion_mnist",
        None,
        ("image", "label"),
        10,
        1,
        "apt-get install dataset-fashion-mnist, pass data.path=/dir/with/idx/files, or run once online",
    ),
    "cifar10": HubSpec("cifar10", "uoft-cs/cifar10", None, ("img", "label"), 10),
    "cifar100": HubSpec("cifar100", "uoft-cs/cifar100", None, ("img", "fine_label"), 100),
    "imagenet": HubSpec(
        "imagenet",
        "ILSVRC/imagenet-1k",
        None,
        ("image", "label"),
        1000,
        3,
        "pass data.path=/imagenet (imagefolder with train/ and val/ class folders, or parquet), "
        "or accept the licence on the hub and run once online (needs HF_TOKEN)",
    ),
}
TEXT_SPECS: dict[str, HubSpec] = {
    "tinystories": HubSpec("tinystories", "roneneldan/TinyStories", None, ("text",)),
    "wikitext103": HubSpec("wikitext103", "Salesforce/wikitext", "wikitext-103-raw-v1", ("text",)),
}


# ----------------------------------------------------------------------------- tables


@dataclass
class Table:
    """Splits of a tabular source plus a key that changes when the source changes (for caches)."""

    splits: dict[str, datasets.Dataset]
    keys: dict[str, str]  # split -> source key
    where: str  # for messages: the path, or the hub repo


def load_table(spec: HubSpec, path: str | os.PathLike[str] | None, tried: Sequence[str] = ()) -> Table:
    """The dataset's splits from ``path`` (parquet / ``save_to_disk``) or from the hub."""
    if path is not None:
        root = check_path(path, spec.name)
        splits = load_local_table(root, spec.columns, spec.name)
        if local_format(root) == "parquet":
            files = parquet_splits(root, spec.name)
            keys = {s: files_fingerprint(fs) for s, fs in files.items()}
        else:
            fp = files_fingerprint(f for f in root.rglob("*") if f.is_file())
            keys = {s: hash_key(fp, s) for s in splits}
        return Table(splits, keys, str(root))
    splits = load_hub(spec.repo, spec.config, name=spec.name, tried=[*tried] or ["no data.path"], hint=spec.hint)
    for split, ds in splits.items():
        missing = [c for c in spec.columns if c not in ds.column_names]
        if missing:
            raise DataError(
                f"{spec.name}: hub '{spec.repo}' split '{split}' has columns {ds.column_names}; expected {list(spec.columns)}"
            )
    # A hub dataset's fingerprint changes with its revision: a safe cache key.
    return Table(splits, {s: f"{spec.repo}:{ds._fingerprint}" for s, ds in splits.items()}, spec.repo)


# ----------------------------------------------------------------------------- images in memory


def _decode(item: dict[str, Any] | None, mode: str) -> np.ndarray:
    from PIL import Image

    if item is None:
        raise ValueError("missing image")
    source = io.BytesIO(item["bytes"]) if item.get("bytes") is not None else item["path"]
    with Image.open(source) as img:
        return np.asarray(img.convert(mode))


def check_labels(labels: np.ndarray, num_classes: int, name: str, where: str) -> None:
    """Refuse labels outside ``0..num_classes-1`` with a message naming the source."""
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        bad = labels[(labels < 0) | (labels >= num_classes)][0]
        raise DataError(f"{name}: labels out of range in '{where}': found {bad}, expected 0..{num_classes - 1}")


def decode_images(ds: datasets.Dataset, column: str, in_chans: int, name: str, where: str) -> np.ndarray:
    """All images of ``column`` as uint8 ``[N,H,W,C]``; corrupt bytes or mixed sizes give a one-line error."""
    import datasets

    feature = ds.features[column]
    if not isinstance(feature, datasets.Image):
        # Array2D/Array3D columns (e.g. our own DatasetDicts saved with save_to_disk) are already pixels.
        arr = np.asarray(ds.with_format("numpy")[column])
        if arr.ndim == 3:
            arr = arr[..., None]
        if arr.ndim != 4 or arr.min() < 0 or arr.max() > 255:
            raise DataError(f"{name}: column '{column}' in '{where}' is not uint8 images (shape {arr.shape})")
        return arr.astype(np.uint8)
    raw = ds.cast_column(column, datasets.Image(decode=False))
    mode = "L" if in_chans == 1 else "RGB"
    first: np.ndarray | None = None
    out: np.ndarray | None = None
    for start in range(0, len(raw), 1000):
        for j, item in enumerate(raw[start : start + 1000][column]):
            i = start + j
            try:
                img = _decode(item, mode)
            except Exception as e:  # PIL.UnidentifiedImageError, OSError (truncated), ValueError
                raise DataError(f"{name}: image {i} in '{where}' cannot be decoded ({type(e).__name__})") from e
            if img.ndim == 2:
                img = img[..., None]
            if out is None:
                first = img
                out = np.empty((len(raw), *img.shape), dtype=np.uint8)
            elif img.shape != first.shape:  # type: ignore[union-attr]
                raise DataError(f"{name}: image {i} in '{where}' is {img.shape}, image 0 is {first.shape}")  # type: ignore[union-attr]
            out[i] = img
    assert out is not None  # read_parquet refuses empty tables
    return out


def image_arrays(
    name: str,
    path: str | os.PathLike[str] | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    tried: Sequence[str] = (),
) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], list[str] | None]:
    """``({split: (uint8 [N,H,W,C], int64 [N])}, class_names)`` for an in-memory image dataset.

    Images are decoded once and cached as ``.npy``; class names come from a ``ClassLabel`` feature if any.
    """
    import datasets

    spec = IMAGE_SPECS[name]
    table = load_table(spec, path, tried)
    image_col, label_col = spec.columns
    out = {}
    names = None
    for split, ds in table.splits.items():
        labels = np.asarray(ds[label_col], dtype=np.int64)
        check_labels(labels, spec.num_classes, name, table.where)
        cache = cache_root(cache_dir) / "images" / f"{name}-{split}-{hash_key(table.keys[split], spec.in_chans)}.npy"
        if cache.exists():
            images = np.load(cache)
        else:
            images = decode_images(ds, image_col, spec.in_chans, name, table.where)
            atomic_save_npy(cache, images)
        if len(images) != len(labels):
            raise DataError(f"{name}: stale image cache '{cache}' ({len(images)} vs {len(labels)} labels); delete it")
        out[split] = (images, labels)
        feature = ds.features[label_col]
        if isinstance(feature, datasets.ClassLabel):
            names = list(feature.names)
    return out, names


# ----------------------------------------------------------------------------- images per item (ImageNet)


def scan_imagefolder(root: Path, name: str) -> tuple[dict[str, tuple[list[Path], np.ndarray]], list[str]]:
    """``({split: (files, labels)}, class_names)`` of an imagefolder tree.

    Either ``root/<class>/*`` (all train) or ``root/{train,val|validation,test}/<class>/*``;
    class ids follow the sorted class folder names of the train split.
    """
    subdirs = {SPLIT_ALIASES.get(d.name.lower()): d for d in root.iterdir() if d.is_dir()}
    split_dirs = {s: d for s, d in subdirs.items() if s is not None}
    if "train" not in split_dirs:
        split_dirs = {"train": root}
    classes = sorted(d.name for d in split_dirs["train"].iterdir() if d.is_dir())
    if not classes:
        raise DataNotFoundError(f"{name}: no class folders under '{split_dirs['train']}'")
    index = {c: i for i, c in enumerate(classes)}
    out = {}
    for split, d in split_dirs.items():
        files: list[Path] = []
        labels: list[int] = []
        for cdir in sorted(p for p in d.iterdir() if p.is_dir()):
            if cdir.name not in index:
                raise DataError(f"{name}: class folder '{cdir}' is not among the train classes")
            imgs = sorted(f for f in cdir.rglob("*") if f.suffix.lower() in IMAGE_SUFFIXES)
            files += imgs
            labels += [index[cdir.name]] * len(imgs)
        if not files:
            raise DataNotFoundError(f"{name}: no images under '{d}'")
        out[split] = (files, np.asarray(labels, dtype=np.int64))
    return out, classes


def _crop_box(w: int, h: int, train: bool) -> tuple[float, float, float, float]:
    """Source box of a random-resized crop (train) or of resize-to-size/0.875 + centre crop (eval).

    Train draws from torch's global RNG, which the train loader seeds per item (:mod:`recipes.data.seeded_items`).
    """
    import torch

    if train:
        area = w * h
        for _ in range(10):  # torchvision's RandomResizedCrop(scale=(0.08, 1), ratio=(3/4, 4/3))
            r = torch.rand(4).tolist()
            target = area * (0.08 + r[0] * 0.92)
            aspect = math.exp(math.log(3 / 4) + r[1] * (math.log(4 / 3) - math.log(3 / 4)))
            cw, ch = math.sqrt(target * aspect), math.sqrt(target / aspect)
            if cw <= w and ch <= h:
                x0 = r[2] * (w - cw)
                y0 = r[3] * (h - ch)
                return x0, y0, x0 + cw, y0 + ch
    side = min(w, h) * 0.875
    x0, y0 = (w - side) / 2, (h - side) / 2
    return x0, y0, x0 + side, y0 + side


class LazyImageDataset:
    """Map-style dataset decoding one image per item to uint8 ``[3,S,S]`` (ImageNet-size data).

    Items come from files (an imagefolder) or from an HF dataset with an ``Image`` column.
    Train items get a random-resized crop drawn from torch's RNG (seeded per item by the train
    loader, :mod:`recipes.data.seeded_items`), eval items a resize + centre crop. Flips happen later, batched.
    """

    def __init__(
        self,
        labels: np.ndarray,
        *,
        files: Sequence[Path] | None = None,
        hf: datasets.Dataset | None = None,
        column: str = "image",
        image_size: int = 224,
        train: bool = False,
        name: str = "imagenet",
    ) -> None:
        if (files is None) == (hf is None):
            raise ValueError("LazyImageDataset: give exactly one of files= or hf=")
        self.labels = labels
        self.files = [str(f) for f in files] if files is not None else None
        if hf is not None:
            import datasets

            hf = hf.cast_column(column, datasets.Image(decode=False)).select_columns([column])
        self.hf, self.column, self.image_size, self.train, self.name = hf, column, image_size, train, name

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        import torch
        from PIL import Image

        where = self.files[i] if self.files is not None else f"item {i} of the hub dataset"
        try:
            item = {"path": self.files[i], "bytes": None} if self.files is not None else self.hf[i][self.column]
            source = io.BytesIO(item["bytes"]) if item.get("bytes") is not None else item["path"]
            with Image.open(source) as img:
                img = img.convert("RGB")
                box = _crop_box(img.width, img.height, self.train)
                img = img.resize((self.image_size, self.image_size), Image.Resampling.BILINEAR, box=box)
        except Exception as e:
            raise DataError(f"{self.name}: cannot decode '{where}' ({type(e).__name__})") from e
        x = torch.from_numpy(np.asarray(img).copy()).permute(2, 0, 1)
        return x, torch.tensor(int(self.labels[i]), dtype=torch.int64)


def imagenet_datasets(
    path: str | os.PathLike[str] | None, image_size: int
) -> tuple[dict[str, tuple[LazyImageDataset, LazyImageDataset]], list[str]]:
    """``({split: (train-mode dataset, eval-mode dataset)}, class_names)`` for ImageNet-like data.

    Both modes share the items, so a hold-out from train can use the eval transform.
    """
    spec = IMAGE_SPECS["imagenet"]
    out: dict[str, tuple[LazyImageDataset, LazyImageDataset]] = {}
    if path is not None and local_format(check_path(path, spec.name)) == "imagefolder":
        splits, classes = scan_imagefolder(Path(path).expanduser(), spec.name)
        for split, (files, labels) in splits.items():
            out[split] = tuple(  # type: ignore[assignment]
                LazyImageDataset(labels, files=files, image_size=image_size, train=t) for t in (True, False)
            )
        return out, classes
    import datasets

    table = load_table(spec, path)
    image_col, label_col = spec.columns
    names: list[str] | None = None
    for split, ds in table.splits.items():
        labels = np.asarray(ds[label_col], dtype=np.int64)
        if split == "test" and labels.size and labels.max() < 0:
            continue  # ImageNet's test split has no labels (-1)
        check_labels(labels, spec.num_classes, spec.name, table.where)
        out[split] = tuple(  # type: ignore[assignment]
            LazyImageDataset(labels, hf=ds, column=image_col, image_size=image_size, train=t) for t in (True, False)
        )
        feature = ds.features[label_col]
        if isinstance(feature, datasets.ClassLabel):
            names = list(feature.names)
    return out, names or [str(i) for i in range(spec.num_classes)]


# ----------------------------------------------------------------------------- text corpora


def text_splits(name: str, path: str | os.PathLike[str] | None) -> Table:
    """Splits of a text corpus (column ``text``) from ``path`` (parquet / ``save_to_disk``) or the hub."""
    return load_table(TEXT_SPECS[name], path)


def iter_texts(ds: datasets.Dataset, column: str = "text", batch: int = 1000) -> Iterator[str]:
    """Stream the strings of ``column`` in chunks (Arrow-backed: no full copy in memory)."""
    for start in range(0, len(ds), batch):
        yield from ds[start : start + batch][column]
