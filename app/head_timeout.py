"""uvicorn's h11 protocol with a bound on the request head: uvicorn times out only an idle keep-alive
connection (after a response), so a client that connects and never finishes its request line and headers
would hold the connection until shutdown."""

from __future__ import annotations

import asyncio
from functools import cache

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from app.settings import Settings


@cache
def head_timeout_seconds() -> float:
    # Read once per worker process: workers take their settings from the environment, as the app does.
    return Settings().head_timeout_seconds


class HeadTimeoutH11Protocol(H11Protocol):
    """Closes a connection whose request head is not complete within HALLMARK_HEAD_TIMEOUT_SECONDS of the
    connection opening or of the previous response ending."""

    _head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_head_timer()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.conn.their_state is not h11.IDLE:  # the head is in: the body has its own pace (app/limits.py)
            self._cancel_head_timer()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing() and self.conn.their_state is h11.IDLE:
            self._arm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_head_timer()
        super().connection_lost(exc)

    def _arm_head_timer(self) -> None:
        self._cancel_head_timer()
        self._head_timer = self.loop.call_later(head_timeout_seconds(), self._head_timed_out)

    def _cancel_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            self.timeout_keep_alive_handler()  # uvicorn's own way to drop an idle connection
