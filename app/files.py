"""Durable file writes and writer locks: the one place the adapters fsync, rename and flock.

Atomic writes use a unique temporary file beside the target, fsync, rename, then fsync the folder, so a
reader sees the old file or the new one, never half of one, and a crash loses at most the change in flight.

Everything Hallmark creates in its data directory is owner-only (folders 0700, files 0600), set explicitly on
creation so the process umask cannot widen it.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

PRIVATE_DIR_MODE = 0o700
PRIVATE_FILE_MODE = 0o600


def make_private_dir(path: Path) -> None:
    """Create `path` and any missing parents owner-only (0700, whatever the umask); existing folders are
    left as they are (`loose_paths` reports them)."""
    missing: list[Path] = []
    for folder in (path, *path.parents):
        if folder.is_dir():
            break
        missing.append(folder)
    for folder in reversed(missing):
        try:
            os.mkdir(folder, PRIVATE_DIR_MODE)
        except FileExistsError:
            if not folder.is_dir():
                raise
            continue  # made meanwhile by another process: its creator set the mode
        os.chmod(folder, PRIVATE_DIR_MODE)  # mkdir's mode is masked by the umask


def loose_paths(root: Path) -> list[Path]:
    """Folders and files under `root` (and `root` itself) that are ours and open to group or others."""
    found: list[Path] = []
    uid = os.getuid()
    for folder, dirs, files in os.walk(root):
        for path in (Path(folder), *(Path(folder) / f for f in files)):
            try:
                info = path.lstat()
            except FileNotFoundError:
                continue
            if info.st_uid == uid and not stat.S_ISLNK(info.st_mode) and stat.S_IMODE(info.st_mode) & 0o077:
                found.append(path)
        dirs[:] = [d for d in dirs if not (Path(folder) / d).is_symlink()]
    return found


def atomic_write(path: Path, data: bytes, mode: int) -> None:
    """Write `data` to a fresh temporary file beside `path`, then rename it over `path`.

    The temporary name is unique and created exclusively (mkstemp: O_EXCL, mode 0600), so a file left
    behind by a crash, or planted by someone else, is never reused with its permissions or content.
    """
    make_private_dir(path.parent)
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
    """Create a file readable by its owner only, atomically (no moment with wider permissions). Every file
    Hallmark writes in its data directory is written so, certificates included."""
    atomic_write(path, data, PRIVATE_FILE_MODE)


def write_public(path: Path, data: bytes) -> None:
    """A world-readable file, for material meant to be shared outside the data directory (test fixtures)."""
    atomic_write(path, data, 0o644)


def write_new(path: Path, data: bytes) -> None:
    """Create `path` owner-only (it must not exist yet) and make its content durable; the caller fsyncs the
    folder."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE_MODE)
    with os.fdopen(fd, "wb") as fh:
        os.fchmod(fh.fileno(), PRIVATE_FILE_MODE)
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
    make_private_dir(lock_file.parent)
    fd = os.open(lock_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, PRIVATE_FILE_MODE)
    with os.fdopen(fd, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
