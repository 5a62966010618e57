"""Trust-list bundles as they come in: from a local file or an https URL (the only network access of the
trust commands, never at verify time), size-capped, and checked against a pinned SHA-256."""

from __future__ import annotations

import hashlib
import re
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from signing import ConfigError

MAX_BUNDLE_BYTES = 4 * 1024 * 1024
FETCH_TIMEOUT_SECONDS = 30.0
SHA256 = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class Bundle:
    """A PEM bundle as it came in, and where from."""

    data: bytes
    source: str

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


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
