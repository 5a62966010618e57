"""Trust-list changes without restarts: each worker watches the trust directory and, when `hallmark trust
add/update/remove` (or an operator's copy) changed it, loads the profiles again and builds a new engine.

Checked at most every `trust_poll_seconds`, on the request path (a few `stat` calls), like the keyring
(app/keywatch.py). A directory that does not load (a profile half-copied by hand, a development profile in
production) keeps the trust the worker had, logs why, and is tried again at the next check.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

from app.settings import Settings
from signing import Engine, HallmarkError, TrustProfile

log = logging.getLogger("hallmark")

Stamp = tuple[tuple[str, int, int, int], ...]
Loader = Callable[[Settings], tuple[tuple[TrustProfile, ...], Engine]]


def trust_stamp(directory: Path) -> Stamp:
    """A cheap fingerprint of the trust directory: name, inode, size and mtime of each entry and of the files
    in each profile directory (the trust store replaces a profile by renaming a new directory into place)."""
    entries: list[tuple[str, int, int, int]] = []
    try:
        children = sorted(directory.iterdir())
    except (FileNotFoundError, NotADirectoryError):
        return ()
    for child in children:
        if child.name.startswith("."):
            continue
        try:
            st = child.stat()
            entries.append((child.name, st.st_ino, st.st_size, st.st_mtime_ns))
            if child.is_dir():
                for inner in sorted(child.iterdir()):
                    st = inner.stat()
                    entries.append((f"{child.name}/{inner.name}", st.st_ino, st.st_size, st.st_mtime_ns))
        except OSError:
            entries.append((child.name, -1, -1, -1))  # vanished while listed: the next check sees the end
    return tuple(entries)


class TrustWatch:
    def __init__(
        self,
        settings: Settings,
        trust: tuple[TrustProfile, ...],
        engine: Engine,
        load: Loader,
        *,
        clock: Callable[[], float] = time.monotonic,
    ):
        self._settings = settings
        self._directory = settings.resolved_trust_dir
        self._load = load
        self._clock = clock
        self._lock = threading.Lock()
        self._stamp = trust_stamp(self._directory)
        self._current = (trust, engine)
        self._next_check = clock() + settings.trust_poll_seconds
        self._listeners: list[Callable[[Engine], None]] = []
        self.problem: str | None = None

    def on_change(self, listener: Callable[[Engine], None]) -> None:
        self._listeners.append(listener)

    def current(self) -> tuple[tuple[TrustProfile, ...], Engine]:
        if self._clock() >= self._next_check:
            self._refresh()
        return self._current

    def _refresh(self) -> None:
        if not self._lock.acquire(blocking=False):
            return  # another thread is reloading; serve with the current trust meanwhile
        try:
            self._next_check = self._clock() + self._settings.trust_poll_seconds
            stamp = trust_stamp(self._directory)
            if stamp == self._stamp:
                return
            try:
                trust, engine = self._load(self._settings)
            except (HallmarkError, OSError) as exc:
                message = exc.message if isinstance(exc, HallmarkError) else type(exc).__name__
                self.problem = f"the changed trust directory could not be loaded: {message}"
                log.error("trust reload failed, keeping the trust profiles loaded before: %s", message)
                return
            self._stamp = stamp
            self._current = (trust, engine)
            self.problem = None
            for listener in self._listeners:
                listener(engine)
            log.info("trust profiles reloaded: %s", [p.name for p in trust])
        finally:
            self._lock.release()
