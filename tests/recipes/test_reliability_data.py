"""Reliability 5: bad data is refused before the first training step, with a one-line message naming the file.

Each case runs the real entry (``recipes.train.train``) on a recipe whose data is broken in one way.
"""

from __future__ import annotations

import numpy as np
import pytest
from recipe_helpers import compose, csv_rows, tiny
from reliability_helpers import TINY_GPT, call_main, one_thread  # noqa: F401  (autouse: one torch thread)

import recipes.train
from recipes.data import DataError, DataNotFoundError


def image_parquet(path, images=None, labels=None, image_col="img", raw=None):
    """A CIFAR-10-format parquet file; ``raw``: these bytes as the only image (e.g. not an image at all)."""
    from data_helpers import write_image_parquet

    if raw is None:
        return write_image_parquet(path, images, labels, image_col=image_col, num_classes=20)
    import datasets

    features = datasets.Features({"img": datasets.Image(), "label": datasets.ClassLabel(num_classes=10)})
    ds = datasets.Dataset.from_dict(
        {"img": [{"bytes": raw, "path": None}] * 4, "label": [0, 1, 2, 3]}, features=features
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.to_parquet(str(path))
    return path


def bad_text(tmp_path, kind):
    path = tmp_path / "corpus.txt"
    if kind == "missing":
        return tmp_path / "nope.txt", path
    path.write_bytes({"empty": b"  \n", "binary": b"\x00\x01\x02 binary"}.get(kind, b"to be or not to be\n"))
    return path, path


@pytest.mark.parametrize(
    ("kind", "error", "message"),
    [
        ("missing", DataNotFoundError, "text_files: data.path '{path}' does not exist"),
        ("empty", DataError, "text_files: '{path}' is empty"),
        ("binary", DataError, "text_files: '{path}' is binary, not text (NUL bytes)"),
        ("short", DataError, "text_files: the train split of '{path}' has 17 tokens; block_size=64 needs at least 65"),
    ],
)
def test_bad_text_is_refused_before_training(tiny_data, tmp_path, kind, error, message):
    path, shown = bad_text(tmp_path, kind)
    overrides = tiny("shakespeare_gpt", tiny_data, tmp_path / "run", *TINY_GPT, "data=text_files", f"data.path={path}")
    with pytest.raises(error) as info:
        recipes.train.train(compose(overrides))
    assert str(info.value) == message.format(path=path if kind == "missing" else shown)
    assert_nothing_trained(tmp_path / "run")


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("corrupt", "cifar10: image 0 in '{root}' cannot be decoded (UnidentifiedImageError)"),
        ("columns", "cifar10: '{file}' has columns ['image', 'label']; expected ['img', 'label'] (missing ['img'])"),
        ("labels", "cifar10: labels out of range in '{root}': found 12, expected 0..9"),
    ],
)
def test_bad_images_are_refused_before_training(tiny_data, tmp_path, kind, message):
    root = tmp_path / "cifar"
    file = root / "train-00000-of-00001.parquet"
    images = np.zeros((4, 32, 32, 3), dtype=np.uint8)
    if kind == "corrupt":
        image_parquet(file, raw=b"\x89PNG but then garbage")
    else:
        image_parquet(file, images, np.array([0, 1, 2, 12 if kind == "labels" else 3]),
                      image_col="image" if kind == "columns" else "img")  # fmt: skip
    overrides = tiny("cifar10_resnet56", tiny_data, tmp_path / "run", f"data.path={root}", "data.val_fraction=0.5")
    with pytest.raises(DataError) as info:
        recipes.train.train(compose(overrides))
    assert str(info.value) == message.format(root=root, file=file)
    assert_nothing_trained(tmp_path / "run")


def assert_nothing_trained(run_dir):
    assert not list(run_dir.rglob("*.ckpt"))
    assert not [r for r in csv_rows(run_dir) if r.get("train/loss")]


def test_the_command_line_says_it_in_one_line(tmp_path, monkeypatch, capsys):
    """Through ``main()``: exit status 1 (2 when the data is not found), one line on stderr, no traceback."""
    monkeypatch.chdir(tmp_path)
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    for path, code in ((empty, 1), (tmp_path / "nope.txt", 2)):
        args = [*TINY_GPT, "data=text_files", f"data.path={path}", "logger=csv", "trainer.accelerator=cpu",
                f"run_dir={tmp_path / path.stem}"]  # fmt: skip
        status, err = call_main(monkeypatch, capsys, *args)
        assert status == code and len(err) == 1 and err[0].startswith("error: text_files: ") and str(path) in err[0]
