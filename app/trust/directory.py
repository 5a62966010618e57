"""Reading the trust directory: each `*.pem` file (a plain bundle, named by its stem) and each sub-directory
holding a `profile.json` is a profile. The core decides what the bytes mean (`profile_from_pem`,
`profile_from_bundle`); this module only finds and reads them."""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path

from signing import (
    TRUST_ANCHORS_FILE,
    TRUST_PROFILE_FILE,
    TRUST_PROFILE_MAX_BYTES,
    TRUST_TSA_ANCHORS_FILE,
    ConfigError,
    TrustProfile,
    profile_from_bundle,
    profile_from_pem,
)


def load_trust_dir(directory: Path, names: Collection[str] | None = None) -> tuple[TrustProfile, ...]:
    """Every profile in `directory` (or only those in `names`), in name order. Names starting with a dot
    (staging, backups) are skipped."""
    if not directory.is_dir():
        return ()
    found: dict[str, TrustProfile] = {}
    for path in sorted(directory.iterdir()):
        if path.name.startswith("."):
            continue
        if names is not None and (path.stem if path.suffix == ".pem" else path.name) not in names:
            continue
        if path.is_file() and path.suffix == ".pem":
            profile = profile_from_pem(path.stem, path.read_bytes(), source=str(path))
        elif path.is_dir() and (path / TRUST_PROFILE_FILE).is_file():
            profile = load_profile_dir(path)
        else:
            continue
        if profile.name in found:
            raise ConfigError(
                f"Trust profile {profile.name!r} exists twice in {directory} (a .pem file and a directory).",
                hint="Remove one of them.",
            )
        found[profile.name] = profile
    return tuple(found[name] for name in sorted(found))


def load_profile_dir(path: Path) -> TrustProfile:
    """`path/profile.json` and the anchors files beside it, checked by the core against their SHA-256."""
    with (path / TRUST_PROFILE_FILE).open("rb") as fh:
        profile_json = fh.read(TRUST_PROFILE_MAX_BYTES + 1)  # the core refuses anything longer
    files = {
        name: (path / name).read_bytes()
        for name in (TRUST_ANCHORS_FILE, TRUST_TSA_ANCHORS_FILE)
        if (path / name).is_file()
    }
    return profile_from_bundle(path.name, profile_json, files, location=str(path))
