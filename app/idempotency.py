"""Idempotency-Key on POST /v1/sign: a retry of the same request gets the first answer again.

The route calls `begin()` before any work: without the header it returns None and nothing changes; with a
key already completed for the same request it returns the stored response (same bytes, same headers, no
new ledger row); otherwise it returns an `IdempotentSign` that holds the key. The route signs with
`held.ledger()` in place of the ledger, which only captures the entry, and `held.complete()` then writes
that ledger row and the stored result in one transaction (app/store/idempotency.py) before the file is
returned. On any failure the route calls `held.release()`: nothing was recorded and a retry signs afresh.

The request's fingerprint is SHA-256 over the canonical JSON of its form fields, its query options, the
upload's file name and the upload's SHA-256: a retry must match it, or it gets 422.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from typing import IO

from fastapi import Request
from fastapi.responses import Response

from app.store.apikeys import ApiKey
from app.store.idempotency import Claim, IdempotencyStore, StoredResult
from signing import (
    IdempotencyKeyError,
    IdempotentResultTooLargeError,
    LedgerEntry,
    LedgerError,
    sha256_stream,
)

HEADER = "Idempotency-Key"
REPLAY_HEADER = "Hallmark-Idempotent-Replay"
MAX_KEY_LENGTH = 255
_KEY = re.compile(r"[\x20-\x7e]+")  # printable ASCII (a UUID is the usual choice)
NO_API_KEY_SCOPE = "-"


def idempotency_key(request: Request) -> str | None:
    """The request's Idempotency-Key, or None; raises `IdempotencyKeyError` (400) for an unusable one."""
    values = request.headers.getlist(HEADER)
    if not values:
        return None
    if len(values) > 1:
        raise IdempotencyKeyError(f"Send one {HEADER} header, not {len(values)}.")
    key = values[0].strip()
    if not key:
        raise IdempotencyKeyError(f"The {HEADER} header is empty.", hint="Send a fresh UUID per request.")
    if len(key) > MAX_KEY_LENGTH:
        raise IdempotencyKeyError(
            f"The {HEADER} is {len(key)} characters long; at most {MAX_KEY_LENGTH} are accepted.",
            hint="Send a fresh UUID per request.",
        )
    if not _KEY.fullmatch(key):
        raise IdempotencyKeyError(
            f"The {HEADER} may hold printable ASCII characters only.", hint="Send a fresh UUID per request."
        )
    return key


def fingerprint(
    fields: Mapping[str, str | None], query: Mapping[str, str], filename: str | None, upload: IO[bytes]
) -> str:
    """SHA-256 over the canonical form of everything that decides the answer."""
    upload_sha256, _ = sha256_stream(upload)
    upload.seek(0)
    canonical = {
        "fields": {k: v for k, v in sorted(fields.items()) if v is not None},
        "query": dict(sorted(query.items())),
        "filename": filename,
        "file_sha256": upload_sha256,
    }
    return hashlib.sha256(json.dumps(canonical, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


class _CapturingLedger:
    """Stands in for the ledger during an idempotent sign: the row is written by `complete()`, in the same
    transaction that stores the result, before anything is returned."""

    def __init__(self) -> None:
        self.entry: LedgerEntry | None = None

    def record(self, entry: LedgerEntry) -> None:
        self.entry = entry


class IdempotentSign:
    """One request holding an Idempotency-Key."""

    def __init__(self, store: IdempotencyStore, claim: Claim, max_result_bytes: int):
        self._store = store
        self._claim = claim
        self._max = max_result_bytes
        self._ledger = _CapturingLedger()

    def ledger(self) -> _CapturingLedger:
        return self._ledger

    def complete(self, media_type: str, headers: dict[str, str], output: IO[bytes], size: int) -> None:
        """Record the ledger row and keep the response, atomically. Leaves `output` at offset 0."""
        entry = self._ledger.entry
        if entry is None:
            raise LedgerError("The signature was not handed to the ledger, so the signed file was withheld.")
        if size > self._max:
            raise IdempotentResultTooLargeError(
                f"The signed result is {size} bytes; with an {HEADER} the service keeps results up to "
                f"{self._max} bytes (HALLMARK_IDEMPOTENCY_MAX_RESULT_BYTES). Nothing was recorded.",
                hint=f"Send this file without an {HEADER}, or ask the operator to raise the limit.",
            )
        output.seek(0)
        body = output.read()
        output.seek(0)
        self._store.complete(self._claim, entry, media_type, headers, body)

    def release(self) -> None:
        self._store.release(self._claim)


def begin(
    request: Request,
    store: IdempotencyStore,
    api_key: ApiKey | None,
    fields: Mapping[str, str | None],
    query: Mapping[str, str],
    filename: str | None,
    upload: IO[bytes],
    max_result_bytes: int,
) -> IdempotentSign | Response | None:
    """None without an Idempotency-Key; the stored response for a completed one; else the held key."""
    key = idempotency_key(request)
    if key is None:
        return None
    scope = api_key.id if api_key is not None else NO_API_KEY_SCOPE
    outcome = store.begin(scope, key, fingerprint(fields, query, filename, upload))
    if isinstance(outcome, StoredResult):
        return replay(outcome)
    return IdempotentSign(store, outcome, max_result_bytes)


def replay(result: StoredResult) -> Response:
    headers = {**result.headers, REPLAY_HEADER: "true"}
    return Response(result.body, media_type=result.media_type, headers=headers)
