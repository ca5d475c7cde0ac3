"""LM on local text files: 90/10 split, char and BPE, and the bad-data errors (one line, naming the file)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from data_helpers import STORY

from recipes.data import build_datamodule
from recipes.data.sources import DataError, DataNotFoundError


@pytest.fixture
def corpus_file(tmp_path):
    path = tmp_path / "input.txt"
    path.write_text(STORY * 20)
    return path


def test_char_split_90_10(corpus_file):
    dm = build_datamodule("text_files", path=str(corpus_file), block_size=32, batch_size=4)
    dm.setup("fit")
    text = corpus_file.read_text()
    cut = int(len(text) * 0.9)
    assert dm.decode(np.asarray(dm.corpus.train).tolist()) == text[:cut]
    assert dm.decode(np.asarray(dm.corpus.val).tolist()) == text[cut:]
    assert dm.vocab_size == len(set(text))
    x, y = next(iter(dm.train_dataloader()))
    assert x.shape == (4, 32) and bool((x[:, 1:] == y[:, :-1]).all())
    assert len(dm.train_dataloader()) == (len(text[:cut]) // 32) // 4  # default samples_per_epoch
    dm2 = build_datamodule("text_files", path=str(corpus_file), block_size=32, batch_size=4, samples_per_epoch=8)
    dm2.setup()
    assert len(dm2.train_dataloader()) == 2
    assert torch.equal(next(iter(dm2.train_dataloader()))[0], x)  # same seed, same first windows


def test_folder_of_files_and_bpe(tmp_path, cache_dir):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.txt").write_text(STORY * 5)
    (tmp_path / "docs" / "b.txt").write_text(STORY.upper() * 5)
    (tmp_path / "docs" / "skip.bin").write_bytes(b"\0\1")
    dm = build_datamodule("text_files", path=str(tmp_path / "docs"), tokenizer="bpe", vocab_size=300, block_size=8)
    dm.setup()
    assert dm.decode(dm.encode("Lily and MAX")) == "Lily and MAX"
    assert np.asarray(dm.corpus.train).dtype == np.uint16 and isinstance(dm.corpus.train, np.memmap)


def one_line_error(excinfo, needle: str) -> str:
    msg = str(excinfo.value)
    assert "\n" not in msg and needle in msg, msg
    return msg


def test_missing_path(tmp_path):
    with pytest.raises(DataNotFoundError) as e:
        build_datamodule("text_files", path=str(tmp_path / "nope.txt")).setup()
    one_line_error(e, "nope.txt' does not exist")
    with pytest.raises(DataError, match="data.path is required"):
        build_datamodule("text_files").setup()


def test_empty_file(tmp_path):
    (tmp_path / "empty.txt").write_text("  \n")
    with pytest.raises(DataError) as e:
        build_datamodule("text_files", path=str(tmp_path / "empty.txt")).setup()
    one_line_error(e, "empty.txt' is empty")


def test_binary_file(tmp_path):
    (tmp_path / "model.bin").write_bytes(bytes(range(256)) * 4)
    with pytest.raises(DataError) as e:
        build_datamodule("text_files", path=str(tmp_path / "model.bin")).setup()
    one_line_error(e, "model.bin' is binary")
    (tmp_path / "latin1.txt").write_bytes("caf\xe9".encode("latin-1"))
    with pytest.raises(DataError) as e:
        build_datamodule("text_files", path=str(tmp_path / "latin1.txt")).setup()
    one_line_error(e, "latin1.txt' is not UTF-8")


def test_block_size_longer_than_corpus(tmp_path):
    (tmp_path / "tiny.txt").write_text("To be, or not to be: that is the question.\n" * 3)
    with pytest.raises(DataError) as e:
        build_datamodule("text_files", path=str(tmp_path / "tiny.txt"), block_size=64).setup()
    msg = one_line_error(e, "tiny.txt' has")
    assert "the val split" in msg and "block_size=64 needs at least 65" in msg


def test_no_text_files_in_folder(tmp_path):
    (tmp_path / "imgs").mkdir()
    (tmp_path / "imgs" / "a.png").write_bytes(b"x")
    with pytest.raises(DataNotFoundError) as e:
        build_datamodule("text_files", path=str(tmp_path / "imgs")).setup()
    one_line_error(e, "no text files")


def test_bad_options():
    with pytest.raises(ValueError, match="data.tokenizer: unknown tokenizer 'word'; valid: char, bpe"):
        build_datamodule("text_files", tokenizer="word")
    with pytest.raises(ValueError, match=r"^data\.block_size: 0; valid: >= 1$"):
        build_datamodule("text_files", block_size=0)
    with pytest.raises(ValueError, match=r"^data\.val_batches: 0; valid: >= 1, or null for every window$"):
        build_datamodule("text_files", val_batches=0)
    with pytest.raises(ValueError, match=r"^data\.val_fraction: 0\.0; valid: 0 < x < 1$"):
        build_datamodule("text_files", val_fraction=0.0)
    with pytest.raises(ValueError, match=r"^data\.batch_size: 'abc'; valid: an integer$"):
        build_datamodule("text_files", batch_size="abc")
