"""Text-classification DataModules: fixed-length character chunks -> class.

Batches are ``(ids [B,T] int64, pad_mask [B,T] bool, labels [B] int64)``; ``pad_mask`` is True
where the position is padding (``ids == pad_id``, only at the end of a play's last chunk).
The train order is a function of ``(seed, epoch)`` and resumes mid-epoch (:mod:`recipes.data.resume`).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import lightning.pytorch as pl
import torch
from torch.utils.data import DataLoader, TensorDataset

from ..values import check_range
from . import shakespeare
from .resume import ResumableTrainData
from .tokenizer import CharTokenizer

PAD_ID = 0


class TextClassificationData(ResumableTrainData, pl.LightningDataModule):
    """Base: subclasses implement :meth:`load_examples`; characters get ids from 1 (0 is padding).

    Args:
        block_size: characters per example (``T``).
        batch_size: examples per batch (per device).
        seed: seeds the split and the train order (per epoch).
        num_workers: loader worker processes.
        path: local data instead of the default source (see the subclass).
    """

    name: str = ""

    def __init__(
        self,
        *,
        block_size: int = 256,
        batch_size: int = 64,
        seed: int = 0,
        num_workers: int = 0,
        path: str | None = None,
    ) -> None:
        super().__init__()
        check_range("data.block_size", block_size, ge=1)
        check_range("data.batch_size", batch_size, ge=1)
        check_range("data.num_workers", num_workers, ge=0)
        self.block_size, self.batch_size, self.seed, self.num_workers, self.path = (
            block_size,
            batch_size,
            seed,
            num_workers,
            path,
        )
        self.pad_id = PAD_ID
        self.class_names: list[str] = []
        self.chars: CharTokenizer | None = None
        self.sets: dict[str, TensorDataset] = {}

    def load_examples(self) -> tuple[dict[str, tuple[list[str], list[int]]], list[str]]:
        """``({"train"|"val"|"test": (texts, labels)}, class_names)``; texts at most ``block_size`` chars."""
        raise NotImplementedError

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def vocab_size(self) -> int:
        """Characters + 1 for padding (available after :meth:`setup`)."""
        if self.chars is None:
            raise RuntimeError(f"{type(self).__name__}: call setup() first (the vocabulary comes from the data)")
        return self.chars.vocab_size + 1

    def encode(self, text: str) -> list[int]:
        assert self.chars is not None, "call setup() first"
        return (self.chars.encode_array(text).astype("int64") + 1).tolist()

    def decode(self, ids: Iterable[int]) -> str:
        assert self.chars is not None, "call setup() first"
        return self.chars.decode(i - 1 for i in ids if i != self.pad_id)

    def _tensors(self, texts: Sequence[str], labels: Sequence[int]) -> TensorDataset:
        assert self.chars is not None
        ids = torch.full((len(texts), self.block_size), self.pad_id, dtype=torch.int64)
        for row, text in enumerate(texts):
            ids[row, : len(text)] = torch.from_numpy(self.chars.encode_array(text).astype("int64") + 1)
        return TensorDataset(ids, ids == self.pad_id, torch.tensor(labels, dtype=torch.int64))

    def setup(self, stage: str | None = None) -> None:
        if self.sets:
            return
        splits, self.class_names = self.load_examples()
        self.chars = CharTokenizer.from_texts(t for texts, _ in splits.values() for t in texts)
        self.sets = {split: self._tensors(texts, labels) for split, (texts, labels) in splits.items()}

    def _loader(self, split: str, train: bool = False) -> DataLoader:
        if not self.sets:
            raise RuntimeError(f"{type(self).__name__}: call setup() before asking for a dataloader")
        return DataLoader(
            self.sets[split],
            batch_size=self.batch_size,
            sampler=self.train_sampler(self.sets[split]) if train else None,
            drop_last=train,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            generator=torch.Generator().manual_seed(self.seed) if train else None,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", train=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._loader("test")


class ShakespeareGenreData(TextClassificationData):
    """A ``block_size``-char passage of a play -> its label, split by play and stratified by genre: a passage's play
    is never seen in training.

    Args:
        label: what to predict, a name of :data:`LABELS`: ``genre``, the play's folder (comedies, histories,
            problems, roman, romances, tragedies); ``speakers``, how many distinct speakers have a whole ``NAME:``
            header line in the passage (0, 1, 2, 3 or more), which a bag of n-grams cannot count (a name said
            twice is one speaker); ``continues``, whether the passage's second half continues its first
            (next-passage prediction, after BERT's next-sentence task, Devlin et al. 2019) or is spliced from
            another play of the same split, which a bag of n-grams cannot see (it adds up both halves).
    """

    name = "shakespeare_genre"

    def __init__(self, *, label: str = "genre", **kwargs: Any) -> None:
        if label not in LABELS:
            raise ValueError(f"data.label: unknown label '{label}'; valid: {', '.join(LABELS)}")
        super().__init__(**kwargs)
        self.label = label

    def load_examples(self) -> tuple[dict[str, tuple[list[str], list[int]]], list[str]]:
        plays = shakespeare.load_plays(self.path)
        make, class_names = LABELS[self.label]
        names = class_names(plays)
        out = {}
        for split, group in shakespeare.split_plays(plays, self.seed).items():
            rng = random.Random(f"{self.seed}:{split}")  # a str seed is hashed the same in every process
            out[split] = make(group, self.block_size, rng, names)
        return out, names


Examples = tuple[list[str], list[int]]


def genre_examples(group: Sequence[shakespeare.Play], size: int, rng: random.Random, classes: Sequence[str]) -> Examples:
    """Each play's consecutive ``size``-char chunks, labelled by the index of the play's genre in ``classes``."""
    texts, labels = [], []
    for play in group:
        pieces = shakespeare.chunks(play.text, size)
        texts += pieces
        labels += [classes.index(play.genre)] * len(pieces)
    return texts, labels


def speaker_examples(group: Sequence[shakespeare.Play], size: int, rng: random.Random, classes: Sequence[str]) -> Examples:
    """The same chunks as :func:`genre_examples`, labelled by their distinct speakers (3 and more are one class)."""
    texts, labels = [], []
    for play in group:
        texts += shakespeare.chunks(play.text, size)
        labels += [min(n, len(SPEAKER_CLASSES) - 1) for n in shakespeare.chunk_speakers(play.text, size)]
    return texts, labels


def continuation_examples(group: Sequence[shakespeare.Play], size: int, rng: random.Random, classes: Sequence[str]) -> Examples:
    """Each whole ``size``-char chunk's first ``size // 2`` characters, then, by a fair coin, its own rest (label 1,
    ``continues``) or the rest of a random chunk of another play of ``group`` (label 0, ``spliced``; of another
    chunk of the same play when only one play of ``group`` has whole chunks). BERT's next-sentence pairs (Devlin et al. 2019, sec. 3.1)
    draw the second part from a random document the same way; here both parts are halves of equal-length chunks,
    so neither the length nor the cut's position tells the labels apart."""
    half = size // 2
    pieces = [(i, c) for i, play in enumerate(group) for c in shakespeare.chunks(play.text, size, min_size=size)]
    if len(pieces) < 2:
        raise ValueError(f"data.label=continues: a split has {len(pieces)} whole {size}-char chunk(s); it needs 2 or more")
    one_play = len({i for i, _ in pieces}) == 1
    texts, labels = [], []
    for k, (i, chunk) in enumerate(pieces):
        if rng.random() < 0.5:
            texts.append(chunk)
            labels.append(1)
            continue
        while True:  # rejection: almost always one draw, and a donor always exists (2+ pieces, or 2+ plays)
            j = rng.randrange(len(pieces))
            if j != k and (pieces[j][0] != i or one_play):
                break
        texts.append(chunk[:half] + pieces[j][1][half:])
        labels.append(0)
    return texts, labels


SPEAKER_CLASSES = ("0 speakers", "1 speaker", "2 speakers", "3+ speakers")
MakeExamples = Callable[[Sequence[shakespeare.Play], int, random.Random, Sequence[str]], Examples]
# label name -> (a split's (texts, labels) from its plays, block size, the split's rng and the class names;
# the class names from all plays)
LABELS: dict[str, tuple[MakeExamples, Callable[[Sequence[shakespeare.Play]], list[str]]]] = {
    "genre": (genre_examples, lambda plays: sorted({p.genre for p in plays})),
    "speakers": (speaker_examples, lambda plays: list(SPEAKER_CLASSES)),
    "continues": (continuation_examples, lambda plays: ["spliced", "continues"]),
}
