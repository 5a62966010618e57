"""The operator side of trust profiles: add, list, show, remove and update them in the trust directory.

Layout (the core reads it, see `signing.load_trust_dir`): `trust/<name>.pem` (a plain bundle of signer
anchors, as `keys init --dev` writes it) or `trust/<name>/` with `profile.json`, `anchors.pem` and/or
`tsa-anchors.pem`. Anchors files are the source bundles byte for byte, so `sha256sum anchors.pem` equals the
hash that was pinned when the profile was installed.

Every change is staged in a dot-directory of the trust directory, read back through the core's own loader,
and only then swapped into place under an exclusive lock: a profile is never half-written. Network access
happens only here, in `fetch_bundle` (https only, size cap, timeout, pinned SHA-256), never at verify time.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import secrets
import shutil
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from signing import ConfigError, TrustProfile, load_trust_dir, profile_from_pem

# The C2PA conformance program's published trust lists: the intended production profiles. The product
# downloads them with `hallmark trust update c2pa|c2pa-tsa --sha256 ...`; it does not ship copies.
C2PA_TRUST_LIST_URL = (
    "https://raw.githubusercontent.com/c2pa-org/conformance-public/main/trust-list/C2PA-TRUST-LIST.pem"
)
C2PA_TSA_TRUST_LIST_URL = (
    "https://raw.githubusercontent.com/c2pa-org/conformance-public/main/trust-list/C2PA-TSA-TRUST-LIST.pem"
)
C2PA_CLAIM_SIGNING_EKU = "1.3.6.1.4.1.62558.2.1"  # c2pa-kp-claimSigning
DOCUMENT_SIGNING_EKU = "1.3.6.1.5.5.7.3.36"  # id-kp-documentSigning

Kind = Literal["signers", "tsa"]

PROFILE_SCHEMA = 1  # what signing.trust reads
PROFILE_FILE = "profile.json"
ANCHORS_FILE = "anchors.pem"
TSA_ANCHORS_FILE = "tsa-anchors.pem"
MAX_BUNDLE_BYTES = 4 * 1024 * 1024
FETCH_TIMEOUT_SECONDS = 30.0
NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
OID = re.compile(r"^[0-2](\.(0|[1-9][0-9]*))+$")
SHA256 = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class DefaultSource:
    url: str
    kind: Kind
    allowed_ekus: tuple[str, ...]


DEFAULT_SOURCES: dict[str, DefaultSource] = {
    # Leaves under the C2PA trust list carry c2pa-kp-claimSigning plus emailProtection or documentSigning;
    # the engine accepts only emailProtection unless told (C2PA certificate policy, claimSigningLeaf).
    "c2pa": DefaultSource(C2PA_TRUST_LIST_URL, "signers", (C2PA_CLAIM_SIGNING_EKU, DOCUMENT_SIGNING_EKU)),
    "c2pa-tsa": DefaultSource(C2PA_TSA_TRUST_LIST_URL, "tsa", ()),
}


@dataclass(frozen=True)
class Bundle:
    """A PEM bundle as it came in, and where from."""

    data: bytes
    source: str

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


# --- fetching ------------------------------------------------------------------------------------------


class _HttpsOnlyRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(
        self,
        req: urllib.request.Request,
        fp: Any,
        code: int,
        msg: str,
        headers: Any,
        newurl: str,
    ) -> urllib.request.Request | None:
        if not newurl.lower().startswith("https://"):
            raise ConfigError(f"The trust list download was redirected away from https ({newurl}).")
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def fetch_bundle(
    source: str, *, max_bytes: int = MAX_BUNDLE_BYTES, timeout: float = FETCH_TIMEOUT_SECONDS
) -> Bundle:
    """Read a bundle from a local file or an https URL, refusing anything larger than `max_bytes`."""
    if "://" in source:
        if not source.lower().startswith("https://"):
            raise ConfigError(
                f"Trust lists are fetched over https only, not {source.split('://', 1)[0]}://.",
                hint="Download it yourself and pass the file, or use an https URL.",
            )
        opener = urllib.request.build_opener(_HttpsOnlyRedirects())
        # https only (checked just above; redirects too, by the handler)
        request = urllib.request.Request(source, headers={"User-Agent": "hallmark-trust-update"})  # noqa: S310
        try:
            with opener.open(request, timeout=timeout) as response:
                data = response.read(max_bytes + 1)
        except ConfigError:
            raise
        except (urllib.error.URLError, OSError, ValueError) as exc:
            raise ConfigError(
                f"Could not download {source}.",
                hint="Check the network, or download the bundle elsewhere and pass the file with --from.",
                details={"error": str(getattr(exc, "reason", exc))[:300]},
            ) from None
    else:
        path = Path(source)
        if not path.is_file():
            raise ConfigError(f"{source} is not a file.")
        with path.open("rb") as fh:
            data = fh.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise ConfigError(f"{source} is larger than {max_bytes} bytes: not a trust list.")
    return Bundle(data, source)


def normalise_sha256(value: str) -> str:
    digest = value.strip().lower().removeprefix("sha256:")
    if not SHA256.match(digest):
        raise ConfigError(f"{value!r} is not a SHA-256 (64 hex digits).")
    return digest


def check_sha256(bundle: Bundle, expected: str) -> None:
    if bundle.sha256 != normalise_sha256(expected):
        raise ConfigError(
            f"{bundle.source} does not have the expected SHA-256: nothing was changed.",
            hint="Get the hash from the list's publisher over a channel you trust; do not copy it from the "
            "download itself.",
            details={"expected": normalise_sha256(expected), "actual": bundle.sha256},
        )


# --- the store -----------------------------------------------------------------------------------------


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
            elif path.is_dir() and (path / PROFILE_FILE).is_file():
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
        return (self.directory / name / PROFILE_FILE).is_file() or (self.directory / f"{name}.pem").is_file()

    def document(self, name: str) -> dict[str, Any] | None:
        """The raw profile.json of a directory profile (None for a plain .pem profile)."""
        path = self.directory / name / PROFILE_FILE
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
            return self._install(
                name,
                anchors=anchors,
                tsa_anchors=tsa_anchors,
                allowed_ekus=allowed_ekus,
                version=version,
                development=development,
                replaces=None,
            )

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
            doc = self.document(name)
            keep: dict[Kind, Bundle | None] = {"signers": None, "tsa": None}
            replaces: dict[str, Any] | None = None
            ekus: tuple[str, ...] = default.allowed_ekus if default else ()
            development = False
            if doc is not None:
                keep = self._current_bundles(name, doc)
                raw_ekus = doc.get("allowed_ekus")
                ekus = tuple(e for e in raw_ekus if isinstance(e, str)) if isinstance(raw_ekus, list) else ()
                development = doc.get("development") is True
                replaces = {k: doc.get(k) for k in ("version", "sha256", "date")}
            elif (self.directory / f"{name}.pem").is_file():
                keep = self._current_bundles(name, None)
                replaces = {"version": None, "sha256": keep["signers"].sha256 if keep["signers"] else None}
            which: Kind = kind or _single_kind(name, keep) or (default.kind if default else "signers")
            keep[which] = bundle
            return self._install(
                name,
                anchors=keep["signers"],
                tsa_anchors=keep["tsa"],
                allowed_ekus=ekus,
                version=version,
                development=development,
                replaces=replaces,
            )

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
                    _fsync_dir(self.directory)
                    _delete(trash)

    # --- internals ------------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """One writer at a time (two concurrent `trust update`s would race on the swap)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        with (self.directory / ".lock").open("a") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def _current_bundles(self, name: str, doc: dict[str, Any] | None) -> dict[Kind, Bundle | None]:
        if doc is None:  # a plain .pem profile: its file holds signer anchors
            path = self.directory / f"{name}.pem"
            return {"signers": Bundle(path.read_bytes(), str(path)), "tsa": None}
        out: dict[Kind, Bundle | None] = {"signers": None, "tsa": None}
        kinds: tuple[tuple[Kind, str, str], ...] = (
            ("signers", "anchors", ANCHORS_FILE),
            ("tsa", "tsa_anchors", TSA_ANCHORS_FILE),
        )
        for kind, key, file in kinds:
            entry = doc.get(key)
            path = self.directory / name / file
            if isinstance(entry, dict) and path.is_file():
                source = entry.get("source")
                out[kind] = Bundle(path.read_bytes(), source if isinstance(source, str) else str(path))
        return out

    def _install(
        self,
        name: str,
        *,
        anchors: Bundle | None,
        tsa_anchors: Bundle | None,
        allowed_ekus: tuple[str, ...],
        version: str | None,
        development: bool,
        replaces: dict[str, Any] | None,
    ) -> TrustProfile:
        ekus = tuple(dict.fromkeys(allowed_ekus))
        for eku in ekus:
            if not OID.match(eku):
                raise ConfigError(
                    f"{eku!r} is not an EKU OID in dotted form (e.g. {C2PA_CLAIM_SIGNING_EKU})."
                )
        # Parse before staging: a bad bundle fails with the core's message naming the profile.
        for bundle in (anchors, tsa_anchors):
            if bundle is not None:
                profile_from_pem(name, bundle.data, source=bundle.source)
        primary = anchors or tsa_anchors
        assert primary is not None
        doc: dict[str, Any] = {
            "schema": PROFILE_SCHEMA,
            "name": name,
            "version": version or primary.sha256[:12],
            "date": datetime.now(UTC).replace(microsecond=0).isoformat(),
            "source": primary.source,
            "sha256": primary.sha256,
            "development": development,
            "allowed_ekus": list(ekus),
            "anchors": _entry(name, ANCHORS_FILE, anchors),
            "tsa_anchors": _entry(name, TSA_ANCHORS_FILE, tsa_anchors),
        }
        if replaces is not None:
            doc["replaces"] = replaces
        staging = self.directory / f".staging-{name}-{secrets.token_hex(4)}"
        try:
            folder = staging / name
            folder.mkdir(parents=True)
            if anchors is not None:
                _write(folder / ANCHORS_FILE, anchors.data)
            if tsa_anchors is not None:
                _write(folder / TSA_ANCHORS_FILE, tsa_anchors.data)
            _write(folder / PROFILE_FILE, (json.dumps(doc, indent=2) + "\n").encode())
            _fsync_dir(folder)
            # Read back through the core's loader: what verification will see, hashes checked.
            (profile,) = load_trust_dir(staging)
            self._swap(name, folder)
            return profile
        finally:
            _delete(staging)

    def _swap(self, name: str, folder: Path) -> None:
        target = self.directory / name
        legacy = self.directory / f"{name}.pem"
        trash = self.directory / f".replaced-{name}-{secrets.token_hex(4)}"
        trash.mkdir()
        try:
            if target.exists():
                os.rename(target, trash / "dir")
            if legacy.exists():  # out before the directory comes in: never two profiles of one name
                os.rename(legacy, trash / legacy.name)
            os.rename(folder, target)
            _fsync_dir(self.directory)
        finally:
            _delete(trash)


def _single_kind(name: str, bundles: dict[Kind, Bundle | None]) -> Kind | None:
    """The one kind of anchors an existing profile has (None when it has none)."""
    present = [kind for kind, bundle in bundles.items() if bundle is not None]
    if len(present) > 1:
        raise ConfigError(
            f"Trust profile {name!r} has signer and TSA anchors: say which to update with --kind."
        )
    return present[0] if present else None


def _entry(name: str, file: str, bundle: Bundle | None) -> dict[str, Any] | None:
    if bundle is None:
        return None
    count = profile_from_pem(name, bundle.data, source=bundle.source).anchor_count
    return {"file": file, "source": bundle.source, "sha256": bundle.sha256, "count": count}


def check_name(name: str) -> None:
    if not NAME.fullmatch(name):
        raise ConfigError(
            f"{name!r} is not a trust profile name.",
            hint="Use 1-64 characters: lower-case letters, digits, '.', '_' and '-', starting with a letter "
            "or digit.",
        )


def _write(path: Path, data: bytes) -> None:
    with path.open("xb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _delete(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists():
        path.unlink()
