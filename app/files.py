"""Durable file writes and writer locks: the one place the adapters fsync, rename and flock.

Atomic writes use a unique temporary file beside the target, fsync, rename, then fsync the folder, so a
reader sees the old file or the new one, never half of one, and a crash loses at most the change in flight.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def atomic_write(path: Path, data: bytes, mode: int) -> None:
    """Write `data` to a fresh temporary file beside `path`, then rename it over `path`.

    The temporary name is unique and created exclusively (mkstemp: O_EXCL, mode 0600), so a file left
    behind by a crash, or planted by someone else, is never reused with its permissions or content.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    tmp = Path(name)
    try:
        with os.fdopen(fd, "wb") as fh:
            os.fchmod(fh.fileno(), mode)
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def write_private(path: Path, data: bytes) -> None:
    """Create a file readable by its owner only, atomically (no moment with wider permissions)."""
    atomic_write(path, data, 0o600)


def write_public(path: Path, data: bytes) -> None:
    atomic_write(path, data, 0o644)


def write_new(path: Path, data: bytes) -> None:
    """Create `path` (it must not exist yet) and make its content durable; the caller fsyncs the folder."""
    with path.open("xb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def fsync_dir(folder: Path) -> None:
    """Make a rename or a new entry in `folder` durable."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def delete(path: Path) -> None:
    """Remove a file or a whole folder; a folder that is partly gone already is not an error."""
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists():
        path.unlink()


@contextmanager
def exclusive_lock(lock_file: Path) -> Iterator[None]:
    """Hold an exclusive advisory lock on `lock_file` (created if missing): one writer at a time, also
    across processes."""
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    with lock_file.open("a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
