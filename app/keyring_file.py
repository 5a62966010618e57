"""The keyring file in the keys directory: read it, and change it atomically under a writer lock.

What a change may do is the core's business (`signing.keyring_rules`); this adapter serialises writers with
a lock file, so two operators cannot lose each other's change, and replaces the file atomically, so a
worker watching it never reads half a keyring.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from app.files import exclusive_lock, write_private
from signing import Keyring
from signing import keyring_rules as rules

FILE_NAME = "keyring.json"


@dataclass(frozen=True)
class KeyringFile:
    folder: Path

    @property
    def path(self) -> Path:
        return self.folder / FILE_NAME

    def exists(self) -> bool:
        return self.path.is_file()

    def load(self) -> Keyring:
        if not self.exists():
            return Keyring()
        return rules.decode(self.path.read_bytes(), str(self.path))

    def stamp(self) -> tuple[int, int, int] | None:
        """A cheap fingerprint of the file (inode, size, mtime): a watcher reloads when it changes."""
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return None
        return (st.st_ino, st.st_size, st.st_mtime_ns)

    def update(self, change: Callable[[Keyring], rules.Change], *, dry_run: bool = False) -> rules.Change:
        """Apply `change` to the current keyring under the lock and write it atomically (unless dry_run)."""
        with exclusive_lock(self.folder / (FILE_NAME + ".lock")):
            ring, events = rules.apply(self.load(), change)
            if not dry_run:
                write_private(self.path, rules.encode(ring))
            return ring, events
