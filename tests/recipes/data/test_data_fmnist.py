"""Fashion-MNIST: IDX reader against known facts and on hand-made files; the DataModule."""

from __future__ import annotations

import gzip

import numpy as np
import pytest
import torch
from data_helpers import write_idx

from recipes.data import fmnist
from recipes.data.sources import DataError, fmnist_install_dir

needs_debian = pytest.mark.skipif(
    fmnist_install_dir() is None,
    reason="Debian package dataset-fashion-mnist not installed (/usr/share/datasets/fashion-mnist)",
)


@needs_debian
def test_real_fmnist_facts():
    data = fmnist.load_arrays()
    (xtr, ytr), (xte, yte) = data["train"], data["test"]
    assert xtr.shape == (60_000, 28, 28) and xte.shape == (10_000, 28, 28)
    assert xtr.dtype == np.uint8 and ytr.dtype == np.int64
    mean, std = xtr.mean(dtype=np.float64) / 255, xtr.std(dtype=np.float64) / 255
    assert abs(mean - 0.2860) < 5e-4 and abs(std - 0.3530) < 5e-4
    assert np.bincount(ytr).tolist() == [6000] * 10 and np.bincount(yte).tolist() == [1000] * 10


def test_read_idx_gz_and_raw(tmp_path):
    a = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    assert np.array_equal(fmnist.read_idx(write_idx(tmp_path / "a.gz", a)), a)
    assert np.array_equal(fmnist.read_idx(write_idx(tmp_path / "a", a)), a)


def test_read_idx_errors(tmp_path):
    bad = tmp_path / "bad-idx.gz"
    bad.write_bytes(gzip.compress(b"\x01\x02\x03\x04hello"))
    with pytest.raises(DataError, match=r"bad-idx\.gz' is not an IDX file"):
        fmnist.read_idx(bad)
    trunc = tmp_path / "trunc"
    trunc.write_bytes(bytes([0, 0, 8, 1]) + (10).to_bytes(4, "big") + b"abc")
    with pytest.raises(DataError, match="trunc' has 11 bytes"):
        fmnist.read_idx(trunc)
    notgz = tmp_path / "x.gz"
    notgz.write_bytes(b"plain")
    with pytest.raises(DataError, match=r"cannot read '.*x\.gz'"):
        fmnist.read_idx(notgz)


def test_labels_out_of_range(idx_dir):
    write_idx(idx_dir / "t10k-labels-idx1-ubyte.gz", np.full(10, 12, dtype=np.uint8))
    with pytest.raises(DataError, match=r"labels out of range in '.*t10k-labels-idx1-ubyte\.gz'") as err:
        fmnist.load_arrays(idx_dir)
    assert "\n" not in str(err.value)


def test_tensors_and_dataset_dict(idx_dir):
    t = fmnist.load_tensors(idx_dir)
    assert t["train"][0].shape == (30, 1, 28, 28) and t["train"][0].dtype == torch.uint8
    dd = fmnist.load_dataset_dict(idx_dir)
    assert set(dd) == {"train", "test"} and dd["train"].features["label"].names[0] == "T-shirt/top"
    first = dd["test"].with_format("torch", dtype=torch.uint8)[0]["image"]
    assert torch.equal(first, t["test"][0][0, 0])


def test_datamodule_on_fixture(idx_dir):
    from recipes.data import FashionMNISTData

    dm = FashionMNISTData(path=str(idx_dir), batch_size=8, val_fraction=0.2, seed=0)
    assert (dm.num_classes, dm.in_chans, dm.image_size, dm.mean, dm.std) == (10, 1, 28, (0.2860,), (0.3530,))
    dm.setup("fit")
    assert len(dm.train_set) == 24 and len(dm.val_set) == 6 and len(dm.test_set) == 10
    x, y = next(iter(dm.train_dataloader()))
    assert x.shape == (8, 1, 28, 28) and x.dtype == torch.uint8 and y.dtype == torch.int64
    xf, _ = dm.transform_batch((x, y), train=False)
    assert xf.dtype == torch.float32
    assert torch.allclose(xf, (x.float() / 255 - 0.2860) / 0.3530)
    # Same seed -> same hold-out; other seed -> another one.
    other = FashionMNISTData(path=str(idx_dir), val_fraction=0.2, seed=1)
    other.setup()
    again = FashionMNISTData(path=str(idx_dir), val_fraction=0.2, seed=0)
    again.setup()
    assert again.val_set.indices == dm.val_set.indices != other.val_set.indices
