"""Write a file so that a reader only ever sees the old content or the new, never half of it.

The bytes go to a temporary file in the same folder, which is flushed, fsynced and renamed over
the target (``os.replace`` is atomic on POSIX and Windows); the folder is then fsynced so the
rename itself survives a power cut. A process killed mid-write leaves the target untouched (and a
stale ``.NAME.tmpPID`` that :func:`remove_stale_temps` clears). Any other error removes the
temporary file and re-raises; an ``OSError`` (disk full, quota, permissions, I/O error) becomes a
one-line :class:`WriteError` naming the file and the cause, also when the writer turned it into its
own exception: torch's zip writer reports a failed ``write`` as ``RuntimeError: [enforce fail at
inline_container.cc] ... unexpected pos``, so the file handed to ``write`` remembers the first
``OSError`` of its ``write``/``flush`` calls. Imports nothing heavy.

Folders (sharded FSDP checkpoints) go the same way with :func:`staged_folder`: written under
``.NAME.tmpPID/``, fsynced, then renamed into place. A folder cannot be renamed over a non-empty
one, so the old version is first renamed aside (``.NAME.tmp-oldPID``) and deleted after; a process
killed between those two renames leaves no ``NAME`` but the complete old version aside, which
:func:`remove_stale_temps` renames back.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

TEMP_MARK = ".tmp"
ASIDE_MARK = f"{TEMP_MARK}-old"  # the previous version of a folder while its new one is renamed into place


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


class _RecordingFile:
    """A binary file that remembers the first ``OSError`` its ``write`` or ``flush`` raised (see the module
    docstring: the writer may replace it by an exception that has lost the errno); everything else passes through."""

    def __init__(self, f: BinaryIO) -> None:
        self._f = f
        self.error: OSError | None = None

    def write(self, data: Any) -> int:
        try:
            return self._f.write(data)
        except OSError as e:
            self.error = self.error or e
            raise

    def flush(self) -> None:
        try:
            self._f.flush()
        except OSError as e:
            self.error = self.error or e
            raise

    def __getattr__(self, name: str) -> Any:
        return getattr(self._f, name)


def atomic_write(
    path: str | os.PathLike[str], write: Callable[[BinaryIO], None], what: str = "file", shown: Path | None = None
) -> None:
    """Call ``write(f)`` on a temporary file and rename it over ``path`` once complete and on disk.

    ``what`` and ``shown`` (default ``path``) name the file in error messages.
    """
    path = Path(path)
    tmp = temp_path(path)
    recorder: _RecordingFile | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as f:
            recorder = _RecordingFile(f)
            write(recorder)  # type: ignore[arg-type]
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        with contextlib.suppress(OSError):
            tmp.unlink()
        if error := _write_error(e, what, shown or path, recorder.error if recorder else None):
            raise error from e
        raise
    fsync_dir(path.parent)


def _os_error(e: BaseException, recorded: OSError | None = None) -> OSError | None:
    """The ``OSError`` behind ``e``: ``e`` itself, the one the file recorded, or one in ``e``'s chain
    (``raise ... from``, or raised while handling it). Not for interrupts (``KeyboardInterrupt``, ``SystemExit``)."""
    if isinstance(e, OSError):
        return e
    if not isinstance(e, Exception):
        return None
    if recorded is not None:
        return recorded
    seen: set[int] = set()
    link: BaseException | None = e
    while link is not None and id(link) not in seen:
        if isinstance(link, OSError):
            return link
        seen.add(id(link))
        link = link.__cause__ or link.__context__
    return None


def _write_error(e: BaseException, what: str, path: Path, recorded: OSError | None = None) -> WriteError | None:
    """The one-line :class:`WriteError` to raise for ``e`` if an ``OSError`` is behind it (and it is not one already)."""
    if isinstance(e, WriteError):
        return None
    cause = _os_error(e, recorded)
    if cause is None:
        return None
    code = errno.errorcode.get(cause.errno, "error") if cause.errno else type(cause).__name__
    reason = os.strerror(cause.errno) if cause.errno else " ".join(str(cause).split())
    error = WriteError(
        f"{what}: could not write '{path}' ({code}: {reason}); the previous {what} there, if any, is unchanged"
    )
    error.errno = cause.errno
    return error


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes, what: str = "file") -> None:
    """:func:`atomic_write` of ``data``."""
    atomic_write(path, lambda f: f.write(data), what)


def remove_path(path: Path) -> None:
    """Delete a file or a folder tree, if there."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(OSError):
            path.unlink()


def fsync_tree(folder: Path) -> None:
    """Persist every file under ``folder``, then the folders themselves (deepest first)."""
    for root, _, files in os.walk(folder, topdown=False):
        for name in files:
            fd = os.open(Path(root) / name, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        fsync_dir(Path(root))


def replace_path(src: Path, dst: Path) -> None:
    """Rename ``src`` (a file or a folder) to ``dst``, replacing what is there: atomically for files;
    for folders the old ``dst`` is renamed aside first and deleted after (see the module docstring)."""
    if not (src.is_dir() or dst.is_dir()):
        os.replace(src, dst)
        return
    aside = dst.with_name(f".{dst.name}{ASIDE_MARK}{os.getpid()}")
    remove_path(aside)
    if dst.exists() or dst.is_symlink():
        os.replace(dst, aside)
    os.replace(src, dst)
    fsync_dir(dst.parent)
    remove_path(aside)


@contextlib.contextmanager
def staged_folder(
    path: str | os.PathLike[str], tmp: Path | None = None, owner: bool = True, what: str = "checkpoint"
) -> Iterator[Path]:
    """Yield a temporary folder to write ``path``'s new version into; once the block ends, fsync it and
    rename it into place. An error removes it (the old ``path`` stays) and an ``OSError`` becomes a
    one-line :class:`WriteError`.

    Several processes writing one folder (FSDP ranks) pass rank 0's ``tmp`` (default: this process's
    :func:`temp_path`) and ``owner=True`` on rank 0 only: the owner clears a stale ``tmp``, publishes
    and cleans up; the others only write.
    """
    path = Path(path)
    tmp = temp_path(path) if tmp is None else Path(tmp)
    try:
        if owner:
            remove_path(tmp)
            tmp.mkdir(parents=True)
        yield tmp
        if owner:
            fsync_tree(tmp)
            replace_path(tmp, path)
    except BaseException as e:
        if owner:
            remove_path(tmp)
        if error := _write_error(e, what, path):
            raise error from e
        raise


def remove_stale_temps(folder: str | os.PathLike[str]) -> list[Path]:
    """Clear what killed writers left in ``folder``: temporary files and folders are deleted, a folder's
    previous version left aside is renamed back when its new version never arrived. Returns what it found."""
    folder = Path(folder)
    stale = sorted(folder.glob(f".*{TEMP_MARK}*")) if folder.is_dir() else []
    for p in stale:
        name, mark, _ = p.name[1:].rpartition(ASIDE_MARK)
        if mark and p.is_dir() and not (folder / name).exists():
            with contextlib.suppress(OSError):
                os.replace(p, folder / name)
            continue  # never delete the only complete version
        remove_path(p)
    return stale
