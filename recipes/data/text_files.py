"""Language-model corpus from local text file(s): first 90 % train, last 10 % val (as nanoGPT does)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from .sources import DataError, check_path, read_text, text_files

NAME = "text_files"


@dataclass(frozen=True)
class TextCorpus:
    """Train/val text of a local corpus; ``files`` are the sources (for cache keys and messages)."""

    train: str
    val: str
    files: tuple[Path, ...]

    @property
    def where(self) -> str:
        return str(self.files[0]) if len(self.files) == 1 else f"{self.files[0].parent} ({len(self.files)} files)"


def load_text_corpus(path: str | os.PathLike[str] | None, val_fraction: float = 0.1, name: str = NAME) -> TextCorpus:
    """Text of ``path`` (a file, or the sorted ``.txt``/``.text``/``.md`` files under a folder), split by position.

    Files are joined with a blank line; the last ``val_fraction`` of the characters is val.
    """
    if path is None:
        raise DataError(f"{name}: data.path is required (a text file or a folder of .txt files)")
    if not 0 < val_fraction < 1:
        raise ValueError(f"data.val_fraction: must be in (0, 1), got {val_fraction}")
    files = tuple(text_files(check_path(path, name), name))
    text = "\n\n".join(read_text(f, name) for f in files)
    cut = int(len(text) * (1 - val_fraction))
    return TextCorpus(text[:cut], text[cut:], files)
