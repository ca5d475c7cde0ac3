"""Test-wide setup: offline, private caches, and tiny data fixtures in the real sources' formats.

Set before anything imports ``datasets`` or ``wandb``: no network (``HF_HUB_OFFLINE=1``), W&B offline
with its files in a temporary folder, and a private ``RESBLOCKS_CACHE`` (tokenizers, decoded images).
"""

from __future__ import annotations

import atexit
import os
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
_TMP = tempfile.mkdtemp(prefix="resblocks-tests-")
atexit.register(shutil.rmtree, _TMP, ignore_errors=True)
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["WANDB_MODE"] = "offline"
os.environ["WANDB_SILENT"] = "true"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# recipes.train measures the CPU fast path (recipes/engine/calibrate.py); tests use the CPU-flags rule, so a
# run means the same whatever the load (tests/recipes/engine/test_calibrate.py turns it back on).
os.environ["RESBLOCKS_CALIBRATE"] = "0"
for _var in (
    "WANDB_CACHE_DIR",
    "WANDB_DATA_DIR",
    "WANDB_CONFIG_DIR",
    "WANDB_DIR",
    "HF_DATASETS_CACHE",
    "RESBLOCKS_CACHE",
):
    os.environ[_var] = str(Path(_TMP) / _var.lower())
for _p in (ROOT, ROOT / "tests" / "recipes" / "data"):  # the repo, and the data team's format writers
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))


def write_imagefolder(root: Path, classes: int = 2, per_class: int = 4, size: int = 40) -> Path:
    """``{train,val}/<class>/*.JPEG`` as ImageNet's imagefolder layout, random pixels."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        for c in range(classes):
            folder = root / split / f"n{c:08d}"
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(per_class):
                Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(folder / f"img_{i}.JPEG")
    return root


def make_tiny_data(root: Path) -> dict[str, Path]:
    """One small dataset per source format the recipes read; ``{source: path}``."""
    from data_helpers import STORY, write_idx, write_image_parquet, write_plays, write_text_parquet

    rng = np.random.default_rng(0)
    out: dict[str, Path] = {}
    fm = root / "fmnist"
    fm.mkdir(parents=True)
    for prefix, n in (("train", 64), ("t10k", 16)):
        write_idx(fm / f"{prefix}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28), dtype=np.uint8))
        write_idx(fm / f"{prefix}-labels-idx1-ubyte.gz", np.arange(n, dtype=np.uint8) % 10)
    out["fmnist"] = fm
    cifar = root / "cifar10"
    for split, n in (("train", 40), ("test", 12)):
        x = rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)
        write_image_parquet(cifar / "plain_text" / f"{split}-00000-of-00001.parquet", x, np.arange(n) % 10)
    out["cifar10"] = cifar
    out["imagenet"] = write_imagefolder(root / "imagenet")
    out["plays"] = write_plays(root / "plays")
    stories = root / "tinystories"
    write_text_parquet(stories / "data" / "train-00000-of-00001.parquet", [f"{STORY} Story {i}." for i in range(60)])
    write_text_parquet(stories / "data" / "validation-00000-of-00001.parquet", [f"{STORY} Tale {i}." for i in range(8)])
    out["tinystories"] = stories
    text = root / "tiny.txt"
    text.write_text(
        "".join(f"FIRST CITIZEN:\nBefore we proceed any further, hear me speak {i}.\n\n" for i in range(60))
    )
    out["text"] = text
    return out


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Small local copies of every recipe's data source (see :func:`make_tiny_data`)."""
    return make_tiny_data(tmp_path_factory.mktemp("tiny-data"))
