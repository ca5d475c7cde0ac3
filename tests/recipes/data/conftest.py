"""Fixtures for the data-layer tests: offline hub, private caches, small files in the hub formats."""

from __future__ import annotations

import atexit
import os
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

# Before anything imports `datasets`: no network, and an HF cache that is not the user's (removed at exit).
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
if "HF_DATASETS_CACHE" not in os.environ:
    os.environ["HF_DATASETS_CACHE"] = _hf_cache = tempfile.mkdtemp(prefix="resblocks-hf-cache-")
    atexit.register(shutil.rmtree, _hf_cache, ignore_errors=True)

HERE = Path(__file__).resolve().parent
for _p in (HERE.parents[2], HERE):  # the repo root and data_helpers, whatever pytest's import mode
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

from data_helpers import STORY, write_idx, write_image_parquet, write_plays, write_text_parquet


@pytest.fixture(autouse=True)
def _offline_and_private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test: HF_HUB_OFFLINE=1 and its own RESBLOCKS_CACHE."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    cache = tmp_path / "resblocks-cache"
    monkeypatch.setenv("RESBLOCKS_CACHE", str(cache))
    return cache


@pytest.fixture
def cache_dir(_offline_and_private_cache: Path) -> Path:
    return _offline_and_private_cache


@pytest.fixture
def cifar_arrays() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(0)
    return {
        "train": (rng.integers(0, 256, (40, 32, 32, 3), dtype=np.uint8), np.arange(40) % 10),
        "test": (rng.integers(0, 256, (12, 32, 32, 3), dtype=np.uint8), np.arange(12) % 10),
    }


@pytest.fixture
def cifar_dir(tmp_path: Path, cifar_arrays) -> Path:
    """``plain_text/{train,test}-00000-of-00001.parquet`` as in ``uoft-cs/cifar10``."""
    root = tmp_path / "cifar10"
    for split, (x, y) in cifar_arrays.items():
        write_image_parquet(root / "plain_text" / f"{split}-00000-of-00001.parquet", x, y)
    return root


@pytest.fixture
def idx_dir(tmp_path: Path) -> Path:
    """The four Fashion-MNIST IDX files with 30 train / 10 test random images."""
    root = tmp_path / "fmnist"
    root.mkdir()
    rng = np.random.default_rng(1)
    for prefix, n in (("train", 30), ("t10k", 10)):
        write_idx(root / f"{prefix}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28), dtype=np.uint8))
        write_idx(root / f"{prefix}-labels-idx1-ubyte.gz", np.arange(n, dtype=np.uint8) % 10)
    return root


@pytest.fixture
def plays_dir(tmp_path: Path) -> Path:
    return write_plays(tmp_path / "plays")


@pytest.fixture
def stories_dir(tmp_path: Path) -> Path:
    """TinyStories-like parquet: ``data/train-*.parquet`` and ``data/validation-*.parquet`` with ``text``."""
    root = tmp_path / "tinystories"
    write_text_parquet(root / "data" / "train-00000-of-00001.parquet", [f"{STORY} Story {i}." for i in range(60)])
    write_text_parquet(root / "data" / "validation-00000-of-00001.parquet", [f"{STORY} Tale {i}." for i in range(8)])
    return root
