"""The request id: one per HTTP request, taken from a client's `X-Request-Id` when it is safe to repeat, else
made here. It is returned in the `X-Request-Id` response header and in problem+json bodies, written on every
log line of the request, and stored in the ledger row of a sign, so an operator can go from a client's
complaint to the log lines and the ledger row (and back)."""

from __future__ import annotations

import re
import uuid
from contextvars import ContextVar

HEADER = "X-Request-Id"
MAX_LENGTH = 128
# Letters, digits and . _ : - only (no spaces, quotes, control characters, log or header syntax), starting
# with a letter or digit: UUIDs, ULIDs and the ids proxies and tracing systems send all fit.
SAFE = re.compile(rf"[A-Za-z0-9][A-Za-z0-9._:-]{{0,{MAX_LENGTH - 1}}}")

_current: ContextVar[str | None] = ContextVar("hallmark_request_id", default=None)


def new_request_id() -> str:
    return uuid.uuid4().hex


def accept_request_id(offered: str | None) -> str:
    """The client's id when it matches `SAFE`, otherwise a new one (a hostile value is dropped, not
    cleaned)."""
    if offered is not None and SAFE.fullmatch(offered):
        return offered
    return new_request_id()


def current_request_id() -> str | None:
    """The id of the request this code runs for (threads started with anyio's `to_thread` inherit it)."""
    return _current.get()


def bind_request_id(request_id: str | None) -> object:
    """Set the current id; returns a token for `unbind_request_id`."""
    return _current.set(request_id)


def unbind_request_id(token: object) -> None:
    _current.reset(token)  # type: ignore[arg-type]
