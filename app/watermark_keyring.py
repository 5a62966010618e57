"""The watermark keyring file (`<keys_dir>/watermark-keys.json`, mode 0600) and a cheap watcher over it.

Secrets come from the operating system's random source, here in the adapter. Workers re-read the file when
its stamp (inode, size, mtime) changes, at most once per `poll_seconds`, so a rotation reaches every worker
within that time without a restart.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from app.files import exclusive_lock, make_private_dir, write_private
from signing import HallmarkError, WatermarkKeyring, decode_watermark_keyring, encode_watermark_keyring

FILE_NAME = "watermark-keys.json"
log = logging.getLogger("hallmark")


@dataclass(frozen=True)
class WatermarkKeyringFile:
    path: Path

    def exists(self) -> bool:
        return self.path.is_file()

    def load(self) -> WatermarkKeyring:
        if not self.exists():
            return WatermarkKeyring()
        return decode_watermark_keyring(self.path.read_bytes(), str(self.path))

    def stamp(self) -> tuple[int, int, int] | None:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return None
        return (st.st_ino, st.st_size, st.st_mtime_ns)

    def rotate(
        self, key_id: str | None = None, *, now: datetime | None = None, only_if_missing: bool = False
    ) -> WatermarkKeyring:
        """Add a fresh random key as the active one (the previous one keeps detecting), atomically. With
        `only_if_missing`, a keyring that exists by the time the lock is held is kept as it is: service
        workers starting together on a fresh data directory make one first key, not one each (the second
        would find the name taken and stop)."""
        make_private_dir(self.path.parent)
        when = now or datetime.now(UTC)
        with exclusive_lock(self.path.with_name(self.path.name + ".lock")):
            ring = self.load()
            if only_if_missing and self.exists():
                return ring
            name = key_id or f"wm-{when:%Y%m%d%H%M%S}-{secrets.token_hex(2)}"
            ring = ring.rotate(name, secrets.token_bytes(32), when)
            write_private(self.path, encode_watermark_keyring(ring))
            return ring


class WatermarkKeyWatch:
    """The current keyring for this worker; reloaded when the file changes."""

    def __init__(
        self, file: WatermarkKeyringFile, poll_seconds: float, clock: Callable[[], float] = time.monotonic
    ):
        self._file = file
        self._poll = poll_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._ring = file.load()
        self._stamp = file.stamp()
        self._next_check = clock() + poll_seconds

    @property
    def file(self) -> WatermarkKeyringFile:
        return self._file

    def current(self) -> WatermarkKeyring:
        now = self._clock()
        if now >= self._next_check:
            with self._lock:
                self._next_check = now + self._poll
                stamp = self._file.stamp()
                if stamp != self._stamp:
                    self._stamp = stamp
                    try:
                        self._ring = self._file.load()
                    except HallmarkError as exc:
                        # A broken file keeps the keys we had: marking stops only when the operator says so.
                        log.error("watermark keyring not reloaded: %s", exc.message)
        return self._ring
