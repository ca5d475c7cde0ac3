"""Registry and build_datamodule: names, option checking, light import, uniform attributes."""

from __future__ import annotations

import subprocess
import sys

import pytest
from data_helpers import ROOT

import recipes.data as rd

NAMES = [
    "fmnist",
    "cifar10",
    "cifar100",
    "imagenet",
    "shakespeare",
    "text_files",
    "tinystories",
    "wikitext103",
    "shakespeare_genre",
]


def test_unknown_name():
    with pytest.raises(ValueError) as e:
        rd.build_datamodule("mnist")
    assert str(e.value) == f"data.name: unknown dataset 'mnist'; valid: {', '.join(NAMES)}"


def test_unknown_option():
    with pytest.raises(ValueError) as e:
        rd.build_datamodule("fmnist", foo=1)
    assert str(e.value) == (
        "data: unknown option 'foo' for 'fmnist'; valid options: "
        "augment, batch_size, cache_dir, crop_padding, limit_train_samples, num_workers, path, seed, val_fraction"
    )
    assert "bpe_train_chars" in rd.options(rd.DATASETS["tinystories"])
    assert "image_size" in rd.options(rd.DATASETS["imagenet"])
    assert "val_fraction" in rd.options(rd.DATASETS["text_files"])


def test_registry_classes():
    import lightning.pytorch as pl

    assert list(rd.DATASETS) == NAMES == rd.dataset_names()
    for name, cls in rd.DATASETS.items():
        assert issubclass(cls, pl.LightningDataModule), name
        dm = rd.build_datamodule(name)  # constructing reads no data
        assert dm.name == name
    assert issubclass(rd.DATASETS["cifar10"], rd.ImageClassificationData)
    assert issubclass(rd.DATASETS["wikitext103"], rd.LanguageModelData)
    assert issubclass(rd.DATASETS["shakespeare_genre"], rd.TextClassificationData)


def test_import_is_light():
    modules = ["augment", "fmnist", "hub", "shakespeare", "sources", "text_files", "tokenizer", "windows"]
    code = (
        f"import sys, recipes.data; import {', '.join('recipes.data.' + m for m in modules)};"
        "heavy = [m for m in ('lightning', 'datasets', 'tokenizers', 'pyarrow', 'PIL') if m in sys.modules];"
        "print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


def test_vocab_needs_setup():
    dm = rd.build_datamodule("text_files", path="unused")
    with pytest.raises(RuntimeError, match="call setup"):
        _ = dm.vocab_size
