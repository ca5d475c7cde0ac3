"""Tokenizers: char round trip, BPE training/round trip/caching, cached token ids."""

from __future__ import annotations

import numpy as np
import pytest
from data_helpers import STORY

from recipes.data import tokenizer as tk

TEXTS = [
    STORY * 3,
    "The quick brown fox jumps over the lazy dog.\n\n  Tabs\tand  spaces. ",
    "caf\u00e9 \u2014 na\u00efve \U0001f600",
]


def test_char_round_trip_and_unknown():
    tok = tk.CharTokenizer.from_texts(["hello world", "\u00e9!"])
    assert tok.vocab == " !dehlorw\u00e9" and tok.vocab_size == 10
    ids = tok.encode("hello \u00e9")
    assert ids == [4, 3, 5, 5, 6, 0, 9] and tok.decode(ids) == "hello \u00e9"
    assert tok.encode_array("hello").dtype == np.uint16
    with pytest.raises(ValueError, match="'z' is not in the vocabulary"):
        tok.encode("zoo")


def test_bpe_trains_round_trips_and_is_cached(cache_dir, monkeypatch):
    bpe = tk.train_bpe(lambda: TEXTS, 300, "fixture-v1")
    assert bpe.path is not None and bpe.path.parent == cache_dir / "tokenizers" and bpe.path.exists()
    assert 258 <= bpe.vocab_size <= 300 and bpe.eot_id is not None
    for text in [*TEXTS, "unseen words: zebra \u00fc\u00df \u4e2d\u6587", "a" + tk.EOT + "b"]:
        assert bpe.decode(bpe.encode(text)) == text
    assert len(bpe.encode(STORY)) < 0.7 * len(STORY.encode())  # merges were learnt
    assert bpe.encode("x" + tk.EOT)[-1] == bpe.eot_id

    # Second call with the same key: loaded from disk, never trained again.
    import tokenizers.trainers

    def boom(*a, **k):
        raise AssertionError("retrained")

    monkeypatch.setattr(tokenizers.trainers, "BpeTrainer", boom)
    again = tk.train_bpe(lambda: boom(), 300, "fixture-v1")
    assert again.path == bpe.path and again.encode(STORY) == bpe.encode(STORY)
    with pytest.raises(AssertionError, match="retrained"):  # other key (source or size) -> new training
        tk.train_bpe(lambda: TEXTS, 300, "fixture-v2")
    with pytest.raises(AssertionError, match="retrained"):
        tk.train_bpe(lambda: TEXTS, 301, "fixture-v1")


def test_bpe_vocab_too_small():
    with pytest.raises(ValueError, match="data.vocab_size: 100 is too small"):
        tk.train_bpe(lambda: TEXTS, 100, "small")


def test_cached_token_ids(cache_dir):
    calls = []

    def chunks():
        calls.append(1)
        return [np.arange(5), np.arange(5, 12)]

    ids = tk.cached_token_ids(chunks, 1000, "k1")
    assert isinstance(ids, np.memmap) and ids.dtype == np.uint16 and ids.tolist() == list(range(12))
    assert (cache_dir / "tokens" / "k1.npy").exists()
    assert tk.cached_token_ids(chunks, 1000, "k1").tolist() == list(range(12)) and len(calls) == 1
    big = tk.cached_token_ids(lambda: [np.array([70_000, 1])], 100_000, "k2")
    assert big.dtype == np.uint32 and big.tolist() == [70_000, 1]


def test_encode_texts_separator():
    bpe = tk.train_bpe(lambda: TEXTS, 300, "sep")
    ids = np.concatenate(list(tk.encode_texts(bpe, ["one story", "two"], tk.EOT, batch=1)))
    assert (ids == bpe.eot_id).sum() == 2 and bpe.decode(ids.tolist()) == f"one story{tk.EOT}two{tk.EOT}"
    assert list(tk.limit_chars(["aaaa", "bb", "cc"], 5)) == ["aaaa", "bb"]
