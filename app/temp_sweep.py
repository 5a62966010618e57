"""Temporary files and directories named after their owner's process, and the sweep of those a dead one left.

Hallmark keeps what it is sent only while a request runs: the upload's private copy (`hallmark-upload-`), the
signed output before it is sent (`hallmark-signed-`), the work directories of ffmpeg and fpcalc
(`hallmark-av-`, `hallmark-media-`), and the metrics directory of a multi-worker `hallmark serve`
(`hallmark-metrics-`). Each is removed by the code that made it; a process killed meanwhile (SIGKILL, the OOM
killer, power loss) leaves it behind in the system temporary directory. So every such name carries its
maker's PID (`prefix("upload")` gives `hallmark-upload-<pid>-`, and tempfile adds random characters), and
`sweep()`, run when a worker starts (the app's lifespan) and when `hallmark serve` starts, removes the
entries of `tempfile.gettempdir()` that:

- are named `hallmark-<kind>-<pid>-...` with one of the kinds above,
- belong to this user (uid), and are a regular file or a real directory (a symlink is never followed nor
  removed; a directory is removed with `shutil.rmtree`, which does not follow links inside it),
- were made by a process that no longer exists (`os.kill(pid, 0)` raises ProcessLookupError), and
- were last modified more than `age_seconds` ago (`HALLMARK_TEMP_SWEEP_AGE_SECONDS`; 0 turns the sweep off).

The age guards against PID namespaces: containers sharing one /tmp see each other's files but not each
other's processes, so a live owner can look dead; no request lasts an hour. A PID reused by another process
only keeps a file longer. Two workers sweeping at once is fine: a file the other removed first is skipped.
Only counts are logged, never a name (names carry nothing submitted, but there is no need).
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import stat
import tempfile
import time
from typing import Any, NamedTuple

log = logging.getLogger("hallmark")

KINDS = ("upload", "signed", "av", "media", "metrics")
_NAME = re.compile(r"hallmark-(?:" + "|".join(KINDS) + r")-([1-9][0-9]{0,9})-")


def prefix(kind: str) -> str:
    """The prefix for a temporary name of this kind made by this process: `hallmark-<kind>-<pid>-`."""
    if kind not in KINDS:
        raise ValueError(f"unknown temporary kind {kind!r}")
    return f"hallmark-{kind}-{os.getpid()}-"


class SweepResult(NamedTuple):
    removed: int  # files and directories removed
    failed: int  # matching entries that could not be removed (permissions, a busy mount)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True  # exists under another user, or not a PID this system has: treat as alive (keep)
    return True


def _rmtree(path: str) -> bool:
    """Removes a real directory (never a symlink, never following one inside); True when it is gone."""
    problems: list[BaseException] = []

    def onerror(_function: object, _path: str, exc_info: tuple[Any, BaseException, Any]) -> None:
        if not isinstance(exc_info[1], FileNotFoundError):  # removed meanwhile by another sweeper: fine
            problems.append(exc_info[1])

    shutil.rmtree(path, onerror=onerror)  # refuses a symlink itself (reported through onerror)
    return not problems


def _stale(path: str, pid: int, age_seconds: float, now: float) -> bool | None:
    """None: keep `path`; else whether it is a directory. Raises OSError when it cannot be examined."""
    info = os.lstat(path)
    if info.st_uid != os.getuid() or now - info.st_mtime < age_seconds:
        return None
    is_dir = stat.S_ISDIR(info.st_mode)
    if not (is_dir or stat.S_ISREG(info.st_mode)):
        return None  # a symlink (or a fifo, a socket): not something this service made
    if pid == os.getpid() or _pid_alive(pid):
        return None
    return is_dir


def _remove(path: str, pid: int, age_seconds: float, now: float) -> bool | None:
    """True: removed; False: it should have been and could not be; None: kept (or gone meanwhile)."""
    try:
        is_dir = _stale(path, pid, age_seconds, now)
        if is_dir is None:
            return None
        if is_dir:
            return _rmtree(path)
        os.unlink(path)
    except FileNotFoundError:
        return None  # removed meanwhile (another worker sweeping at the same moment)
    except OSError:
        return False
    return True


def sweep(age_seconds: float, directory: str | None = None, now: float | None = None) -> SweepResult:
    """Removes what dead processes left in `directory` (default: tempfile.gettempdir()); see the module
    docstring for the rules. `age_seconds` <= 0 removes nothing."""
    if age_seconds <= 0:
        return SweepResult(0, 0)
    folder = directory if directory is not None else tempfile.gettempdir()
    now = time.time() if now is None else now
    try:
        names = os.listdir(folder)
    except OSError:
        return SweepResult(0, 0)  # no temporary directory to sweep: nothing was left there either
    outcomes = []
    for name in names:
        match = _NAME.match(name)
        if match is not None:
            outcomes.append(_remove(os.path.join(folder, name), int(match.group(1)), age_seconds, now))
    return SweepResult(outcomes.count(True), outcomes.count(False))


def sweep_and_log(age_seconds: float) -> SweepResult:
    """`sweep()` of the system temporary directory; its counts are logged (nothing when it found nothing)."""
    result = sweep(age_seconds)
    if result.removed:
        log.info(
            "removed %d temporary file(s) or directory(ies) left in %s by processes that no longer run",
            result.removed,
            tempfile.gettempdir(),
        )
    if result.failed:
        log.warning(
            "could not remove %d temporary file(s) or directory(ies) left by processes that no longer run",
            result.failed,
        )
    return result
