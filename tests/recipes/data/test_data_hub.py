"""Hub loaders on small local files in the hub formats: CIFAR parquet, ImageNet imagefolder, text parquet/arrow."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from data_helpers import STORY, write_image_parquet, write_text_parquet

from recipes.data import build_datamodule, hub
from recipes.data.sources import DataError, DataNotFoundError


def test_cifar10_from_parquet(cifar_dir, cifar_arrays, cache_dir, monkeypatch):
    dm = build_datamodule("cifar10", path=str(cifar_dir), batch_size=10, val_fraction=0.25, seed=0)
    assert (dm.num_classes, dm.in_chans, dm.image_size) == (10, 3, 32)
    dm.prepare_data()
    dm.setup("fit")
    assert dm.class_names == [f"c{i}" for i in range(10)]  # from the ClassLabel feature
    assert len(dm.train_set) == 30 and len(dm.val_set) == 10 and len(dm.test_set) == 12
    # Decoded pixels are the source pixels, as uint8 CHW.
    x, y = dm.test_set[3]
    assert x.dtype == torch.uint8 and x.shape == (3, 32, 32) and int(y) == 3
    assert np.array_equal(x.permute(1, 2, 0).numpy(), cifar_arrays["test"][0][3])
    xb, yb = next(iter(dm.train_dataloader()))
    assert xb.shape == (10, 3, 32, 32) and xb.dtype == torch.uint8 and yb.dtype == torch.int64
    cached = sorted((cache_dir / "images").glob("cifar10-*.npy"))
    assert len(cached) == 2  # train + test decoded once

    # A second run reads the .npy cache and decodes nothing.
    def no_decode(*a, **k):
        raise AssertionError("decoded again")

    monkeypatch.setattr(hub, "decode_images", no_decode)
    again = build_datamodule("cifar10", path=str(cifar_dir), val_fraction=0.25)
    again.setup("fit")
    assert torch.equal(again.test_set[3][0], x)


def test_limit_and_test_as_val(cifar_dir):
    dm = build_datamodule("cifar10", path=str(cifar_dir), val_fraction=0.0, limit_train_samples=7)
    dm.setup()
    assert len(dm.train_set) == 7 and dm.val_set is dm.test_set


def test_cifar100_fine_label(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (6, 32, 32, 3), dtype=np.uint8)
    for split in ("train", "test"):
        write_image_parquet(
            tmp_path / f"{split}.parquet", x, np.array([0, 5, 99, 42, 1, 2]), label_col="fine_label", num_classes=100
        )
    dm = build_datamodule("cifar100", path=str(tmp_path), val_fraction=0)
    dm.setup()
    assert dm.num_classes == 100 and sorted(int(dm.test_set[i][1]) for i in range(6)) == [0, 1, 2, 5, 42, 99]


def test_wrong_columns(tmp_path):
    write_image_parquet(
        tmp_path / "train.parquet", np.zeros((2, 32, 32, 3), np.uint8), np.array([0, 1]), image_col="image"
    )
    with pytest.raises(
        DataError, match=r"train\.parquet' has columns \['image', 'label'\]; expected \['img', 'label'\]"
    ) as err:
        build_datamodule("cifar10", path=str(tmp_path)).setup()
    assert "\n" not in str(err.value)


def test_labels_out_of_range(tmp_path):
    path = write_image_parquet(tmp_path / "train.parquet", np.zeros((2, 32, 32, 3), np.uint8), np.array([0, 1]))
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    table = table.set_column(1, "label", pa.array([3, 10], type=pa.int64()))  # plain ints, 10 is out of range
    pq.write_table(table.replace_schema_metadata(None), tmp_path / "train.parquet")
    with pytest.raises(DataError, match=r"labels out of range in '.*train\.parquet': found 10, expected 0\.\.9"):
        build_datamodule("cifar10", path=str(tmp_path / "train.parquet")).setup()


def test_corrupt_image_bytes(tmp_path):
    import datasets

    features = datasets.Features({"img": datasets.Image(), "label": datasets.Value("int64")})
    ds = datasets.Dataset.from_dict(
        {"img": [{"bytes": b"\x89PNG not really", "path": None}], "label": [0]}, features=features
    )
    ds.to_parquet(str(tmp_path / "train.parquet"))
    with pytest.raises(DataError, match=r"image 0 in '.*train\.parquet' cannot be decoded") as err:
        build_datamodule("cifar10", path=str(tmp_path / "train.parquet")).setup()
    assert "\n" not in str(err.value)


def test_hub_miss_offline_is_clear():
    with pytest.raises(DataNotFoundError) as err:
        build_datamodule("cifar10").setup()
    msg = str(err.value)
    assert msg.startswith("cifar10: no data found") and "uoft-cs/cifar10" in msg and "HF_HUB_OFFLINE=1" in msg
    assert "data.path" in msg and "\n" not in msg
    assert isinstance(err.value, FileNotFoundError)
    with pytest.raises(DataNotFoundError, match="wikitext-103-raw-v1.*HF_HUB_OFFLINE=1"):
        build_datamodule("wikitext103").setup()


def _jpeg(path, w, h, value):
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((h, w, 3), value, dtype=np.uint8)).save(path)


def test_imagenet_imagefolder(tmp_path):
    root = tmp_path / "imagenet"
    for split, n in (("train", 3), ("val", 2)):
        for c, cls in enumerate(("n01440764", "n01443537")):
            for i in range(n):
                _jpeg(root / split / cls / f"{cls}_{i}.JPEG", 40 + 13 * i, 30 + 7 * c, 60 * (c + 1))
    dm = build_datamodule("imagenet", path=str(root), image_size=24, batch_size=4, num_workers=0)
    dm.setup("fit")
    assert dm.class_names == ["n01440764", "n01443537"] and dm.num_classes == 2 and dm.image_size == 24
    assert len(dm.train_set) == 6 and len(dm.val_set) == 4
    x, y = next(iter(dm.train_dataloader()))
    assert x.shape == (4, 3, 24, 24) and x.dtype == torch.uint8 and y.dtype == torch.int64
    xv, yv = next(iter(dm.val_dataloader()))
    # Solid-colour images: every pixel keeps its class colour (JPEG is close to exact on flat colour).
    for img, label in zip(xv, yv):
        assert abs(img.float().mean().item() - 60 * (int(label) + 1)) < 3
    xf, _ = dm.transform_batch((x, y), train=True)
    assert xf.dtype == torch.float32 and xf.shape == x.shape


def test_imagenet_corrupt_file(tmp_path):
    bad = tmp_path / "inet" / "train" / "a" / "broken.JPEG"
    bad.parent.mkdir(parents=True)
    bad.write_bytes(b"not a jpeg")
    dm = build_datamodule("imagenet", path=str(tmp_path / "inet"), val_fraction=0.5, num_workers=0)
    dm.setup()  # files are only opened per item, in the loader workers
    with pytest.raises(DataError, match=r"cannot decode '.*broken\.JPEG'"):
        dm.train_set[0]


def test_tinystories_bpe_from_parquet(stories_dir, cache_dir):
    dm = build_datamodule(
        "tinystories", path=str(stories_dir), vocab_size=300, block_size=16, batch_size=4, val_batches=2
    )
    assert dm.tokenizer_kind == "bpe"
    dm.prepare_data()
    dm.setup("fit")
    assert 258 <= dm.vocab_size <= 300
    assert dm.decode(dm.encode(STORY)) == STORY
    x, y = next(iter(dm.train_dataloader()))
    assert x.shape == y.shape == (4, 16) and x.dtype == torch.int64 and bool((x[:, 1:] == y[:, :-1]).all())
    assert len(dm.val_dataloader()) == 2
    eot = dm.tokenizer.eot_id
    assert int((np.asarray(dm.corpus.train) == eot).sum()) == 60  # one separator per story
    assert {p.name.split("-")[1] for p in (cache_dir / "tokens").glob("*.npy")} == {"train", "val", "test"}
    assert len(list((cache_dir / "tokenizers").glob("*.json"))) == 1


def test_wikitext_from_save_to_disk(tmp_path):
    import datasets

    lines = [" = Title = \n", "", f" {STORY}\n", " The end . \n"] * 20
    dd = datasets.DatasetDict({s: datasets.Dataset.from_dict({"text": lines}) for s in ("train", "validation", "test")})
    dd.save_to_disk(str(tmp_path / "wt"))
    dm = build_datamodule("wikitext103", path=str(tmp_path / "wt"), vocab_size=280, block_size=8, batch_size=2)
    dm.setup()
    assert dm.decode(np.asarray(dm.corpus.test).tolist()) == "".join(lines)  # lines joined as-is
    x, _ = next(iter(dm.test_dataloader()))
    assert x.shape == (2, 8)


def test_text_parquet_without_val_split(tmp_path):
    write_text_parquet(tmp_path / "stories.parquet", [f"{STORY} {i}" for i in range(50)])
    dm = build_datamodule(
        "tinystories", path=str(tmp_path / "stories.parquet"), tokenizer="char", block_size=32, val_fraction=0.1
    )
    dm.setup()
    assert dm.decode(np.asarray(dm.corpus.val[: len(STORY)]).tolist()) == STORY  # held-out tail documents
    assert len(dm.corpus.val) < len(dm.corpus.train) / 5


def test_chars_per_token(stories_dir):
    dm = build_datamodule("tinystories", path=str(stories_dir), vocab_size=300, block_size=16)
    dm.setup()
    val_text = "".join(f"{STORY} Tale {i}." for i in range(8))  # the val documents, EOT not counted
    assert dm.chars_per_token == pytest.approx(len(val_text) / len(dm.corpus.val))
    assert dm.chars_per_token > 1.2
    char = build_datamodule("tinystories", path=str(stories_dir), tokenizer="char", block_size=16)
    char.setup()
    assert char.chars_per_token == 1.0


def test_imagenet_hub_format_parquet(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (4, 40, 48, 3), dtype=np.uint8)
    for split in ("train", "validation"):
        write_image_parquet(tmp_path / "data" / f"{split}-00000.parquet", x, np.array([0, 1, 2, 1]), image_col="image")
    dm = build_datamodule("imagenet", path=str(tmp_path), image_size=16, batch_size=2, num_workers=0)
    dm.setup()
    assert dm.class_names == [f"c{i}" for i in range(10)] and len(dm.val_set) == 4
    xb, yb = next(iter(dm.val_dataloader()))
    assert xb.shape == (2, 3, 16, 16) and xb.dtype == torch.uint8 and yb.tolist() == [0, 1]
