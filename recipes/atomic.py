"""Write a file so that a reader only ever sees the old content or the new, never half of it.

The bytes go to a temporary file in the same folder, which is flushed, fsynced and renamed over
the target (``os.replace`` is atomic on POSIX and Windows); the folder is then fsynced so the
rename itself survives a power cut. A process killed mid-write leaves the target untouched (and a
stale ``.NAME.tmpPID`` that :func:`remove_stale_temps` clears). Any other error removes the
temporary file and re-raises; an ``OSError`` (disk full, quota, permissions) becomes a one-line
:class:`WriteError` naming the file and the cause. Imports nothing heavy.
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

TEMP_MARK = ".tmp"


class WriteError(OSError):
    """A file could not be written; the previous version of it (if any) is intact. One-line message."""


def temp_path(path: Path) -> Path:
    """The temporary file :func:`atomic_write` uses for ``path`` in this process (hidden, same folder)."""
    return path.with_name(f".{path.name}{TEMP_MARK}{os.getpid()}")


def fsync_dir(folder: Path) -> None:
    """Persist a rename in ``folder`` (a no-op where folders cannot be opened, e.g. Windows)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(
    path: str | os.PathLike[str], write: Callable[[BinaryIO], None], what: str = "file", shown: Path | None = None
) -> None:
    """Call ``write(f)`` on a temporary file and rename it over ``path`` once complete and on disk.

    ``what`` and ``shown`` (default ``path``) name the file in error messages.
    """
    path = Path(path)
    tmp = temp_path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        with contextlib.suppress(OSError):
            tmp.unlink()
        if isinstance(e, OSError) and not isinstance(e, WriteError):
            code = errno.errorcode.get(e.errno, "error") if e.errno else type(e).__name__
            reason = os.strerror(e.errno) if e.errno else str(e)
            error = WriteError(
                f"{what}: could not write '{shown or path}' ({code}: {reason}); the previous {what} there, if any, "
                "is unchanged"
            )
            error.errno = e.errno
            raise error from e
        raise
    fsync_dir(path.parent)


def remove_stale_temps(folder: str | os.PathLike[str]) -> list[Path]:
    """Delete the temporary files that killed writers left in ``folder``; returns them."""
    folder = Path(folder)
    stale = [p for p in folder.glob(f".*{TEMP_MARK}*") if p.is_file()] if folder.is_dir() else []
    for p in stale:
        with contextlib.suppress(OSError):
            p.unlink()
    return stale
