"""The trust directory: list and read its profiles, and add, update or remove one without ever leaving a
profile half-written.

Layout (read by `app.trust.directory`, interpreted by the core): `trust/<name>.pem` (a plain bundle of signer
anchors, as `keys init --dev` writes it) or `trust/<name>/` with `profile.json`, `anchors.pem` and/or
`tsa-anchors.pem`. Anchors files are the source bundles byte for byte, so `sha256sum anchors.pem` equals the
hash that was pinned when the profile was installed.

Every change is staged in a dot-directory of the trust directory, read back through the core's own loader,
and only then swapped into place under an exclusive lock.
"""

from __future__ import annotations

import json
import os
import secrets
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from app.files import delete, exclusive_lock, fsync_dir, make_private_dir, write_new
from app.trust.bundles import Bundle, check_sha256
from app.trust.directory import load_trust_dir
from app.trust.profiles import check_name, installed_bundles, profile_document, single_kind
from app.trust.sources import DEFAULT_SOURCES, Kind
from signing import (
    TRUST_ANCHORS_FILE,
    TRUST_PROFILE_FILE,
    TRUST_TSA_ANCHORS_FILE,
    ConfigError,
    TrustProfile,
)


class TrustStore:
    """Trust profiles on disk, in one trust directory."""

    def __init__(self, directory: Path):
        self.directory = directory

    def profiles(self) -> tuple[TrustProfile, ...]:
        """All profiles, as the service loads them (one broken profile is an error)."""
        return load_trust_dir(self.directory)

    def names(self) -> list[str]:
        """Names of the profiles present, without reading them."""
        if not self.directory.is_dir():
            return []
        out: set[str] = set()
        for path in self.directory.iterdir():
            if path.name.startswith("."):
                continue
            if path.is_file() and path.suffix == ".pem":
                out.add(path.stem)
            elif path.is_dir() and (path / TRUST_PROFILE_FILE).is_file():
                out.add(path.name)
        return sorted(out)

    def entries(self) -> list[tuple[str, TrustProfile | ConfigError]]:
        """Every profile, or the error that keeps it from loading."""
        out: list[tuple[str, TrustProfile | ConfigError]] = []
        for name in self.names():
            try:
                out.append((name, self.get(name)))
            except ConfigError as exc:
                out.append((name, exc))
        return out

    def get(self, name: str) -> TrustProfile:
        found = load_trust_dir(self.directory, names=(name,))
        if not found:
            raise ConfigError(
                f"There is no trust profile {name!r} in {self.directory}.", hint="See `hallmark trust list`."
            )
        return found[0]

    def exists(self, name: str) -> bool:
        return (self.directory / name / TRUST_PROFILE_FILE).is_file() or (
            self.directory / f"{name}.pem"
        ).is_file()

    def document(self, name: str) -> dict[str, Any] | None:
        """The raw profile.json of a directory profile (None for a plain .pem profile)."""
        path = self.directory / name / TRUST_PROFILE_FILE
        if not path.is_file():
            return None
        doc = json.loads(path.read_text(encoding="utf-8"))
        return doc if isinstance(doc, dict) else None

    # --- changes ----------------------------------------------------------------------------------------

    def add(
        self,
        name: str,
        *,
        anchors: Bundle | None = None,
        tsa_anchors: Bundle | None = None,
        allowed_ekus: tuple[str, ...] = (),
        version: str | None = None,
        development: bool = False,
        replace: bool = False,
    ) -> TrustProfile:
        """Install a new profile (or, with `replace`, overwrite one) from one or two bundles."""
        check_name(name)
        if anchors is None and tsa_anchors is None:
            raise ConfigError("A trust profile needs signer anchors, TSA anchors or both.")
        with self._locked():
            if self.exists(name) and not replace:
                raise ConfigError(
                    f"Trust profile {name!r} exists.",
                    hint="Use `hallmark trust update` to install a new version, or remove it first.",
                )
            doc = profile_document(
                name,
                anchors=anchors,
                tsa_anchors=tsa_anchors,
                allowed_ekus=allowed_ekus,
                version=version,
                development=development,
                replaces=None,
            )
            return self._install(name, doc, anchors, tsa_anchors)

    def update(
        self,
        name: str,
        bundle: Bundle,
        *,
        expected_sha256: str,
        kind: Kind | None = None,
        version: str | None = None,
    ) -> TrustProfile:
        """Install `bundle` as the new version of profile `name` (created if missing), pinned by hash.

        The hash is checked before anything is written. The profile keeps its other anchors file, its
        allowed EKUs and its development flag; a plain .pem profile becomes a directory profile."""
        check_name(name)
        check_sha256(bundle, expected_sha256)
        default = DEFAULT_SOURCES.get(name)
        with self._locked():
            # Works from the files, not the loaded profile: an update must be able to repair a broken one.
            current = self.document(name)
            keep: dict[Kind, Bundle | None] = {"signers": None, "tsa": None}
            replaces: dict[str, Any] | None = None
            ekus: tuple[str, ...] = default.allowed_ekus if default else ()
            development = False
            if current is not None:
                keep = installed_bundles(self.directory, name, current)
                raw_ekus = current.get("allowed_ekus")
                ekus = tuple(e for e in raw_ekus if isinstance(e, str)) if isinstance(raw_ekus, list) else ()
                development = current.get("development") is True
                replaces = {k: current.get(k) for k in ("version", "sha256", "date")}
            elif (self.directory / f"{name}.pem").is_file():
                keep = installed_bundles(self.directory, name, None)
                replaces = {"version": None, "sha256": keep["signers"].sha256 if keep["signers"] else None}
            which: Kind = kind or single_kind(name, keep) or (default.kind if default else "signers")
            keep[which] = bundle
            doc = profile_document(
                name,
                anchors=keep["signers"],
                tsa_anchors=keep["tsa"],
                allowed_ekus=ekus,
                version=version,
                development=development,
                replaces=replaces,
            )
            return self._install(name, doc, keep["signers"], keep["tsa"])

    def remove(self, name: str) -> None:
        # Before any path is built from it: `../keys/x` must not reach outside the trust directory. A name the
        # directory listing yields (one path component, no leading dot) stays removable even when it predates
        # the naming rule, e.g. a hand-copied `MyCA.pem`.
        if name not in self.names():
            check_name(name)
        with self._locked():
            if not self.exists(name):
                raise ConfigError(
                    f"There is no trust profile {name!r} in {self.directory}.",
                    hint="See `hallmark trust list`.",
                )
            for target in (self.directory / name, self.directory / f"{name}.pem"):
                if target.exists():
                    trash = self.directory / f".removed-{name}-{secrets.token_hex(4)}"
                    os.rename(target, trash)  # gone for readers in one step
                    fsync_dir(self.directory)
                    delete(trash)

    # --- internals ------------------------------------------------------------------------------------

    def _locked(self) -> AbstractContextManager[None]:
        """One writer at a time (two concurrent `trust update`s would race on the swap)."""
        return exclusive_lock(self.directory / ".lock")

    def _install(
        self, name: str, doc: dict[str, Any], anchors: Bundle | None, tsa_anchors: Bundle | None
    ) -> TrustProfile:
        staging = self.directory / f".staging-{name}-{secrets.token_hex(4)}"
        try:
            folder = staging / name
            make_private_dir(folder)
            if anchors is not None:
                write_new(folder / TRUST_ANCHORS_FILE, anchors.data)
            if tsa_anchors is not None:
                write_new(folder / TRUST_TSA_ANCHORS_FILE, tsa_anchors.data)
            write_new(folder / TRUST_PROFILE_FILE, (json.dumps(doc, indent=2) + "\n").encode())
            fsync_dir(folder)
            # Read back through the core's loader: what verification will see, hashes checked.
            (profile,) = load_trust_dir(staging)
            self._swap(name, folder)
            return profile
        finally:
            delete(staging)

    def _swap(self, name: str, folder: Path) -> None:
        target = self.directory / name
        legacy = self.directory / f"{name}.pem"
        trash = self.directory / f".replaced-{name}-{secrets.token_hex(4)}"
        make_private_dir(trash)
        try:
            if target.exists():
                os.rename(target, trash / "dir")
            if legacy.exists():  # out before the directory comes in: never two profiles of one name
                os.rename(legacy, trash / legacy.name)
            os.rename(folder, target)
            fsync_dir(self.directory)
        finally:
            delete(trash)
