"""Logging: one JSON object per line (HALLMARK_LOG_FORMAT=json, the default outside --dev) or plain text,
and the outermost middleware that gives every request its id and writes one access line when it ends.

What is logged (the README's "What the service logs" repeats this as a promise): time, level, logger,
message, process id, and for request lines the request id, method, path (never the query string), status and
duration. Never request or response bodies, uploaded content, headers (so no Authorization or API key),
client addresses or query strings. Messages written by the service name files, keys by their id and
database errors by their type, never key material.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from datetime import UTC, datetime
from typing import Any

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.metrics import HTTP_REQUESTS
from app.request_context import (
    HEADER,
    accept_request_id,
    bind_request_id,
    current_request_id,
    unbind_request_id,
)

FORMATS = ("json", "text")
ACCESS = logging.getLogger("hallmark.access")
# Fields a record may carry (from `extra=`) that the JSON line keeps, in this order.
REQUEST_FIELDS = ("method", "path", "status", "duration_ms")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC, ISO 8601), level, logger, message, pid, and request_id, method,
    path, status, duration_ms when known; an exception's traceback under `exception`."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "pid": record.process,
        }
        request_id = getattr(record, "request_id", None) or current_request_id()
        if request_id:
            line["request_id"] = request_id
        for name in REQUEST_FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                line[name] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=True, default=str)


class TextFormatter(logging.Formatter):
    """The plain format of `--dev`, with the request's id and fields appended when there are some."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        extra = [f"{name}={getattr(record, name)}" for name in REQUEST_FIELDS if hasattr(record, name)]
        request_id = getattr(record, "request_id", None) or current_request_id()
        if request_id:
            extra.append(f"request_id={request_id}")
        return f"{text} {' '.join(extra)}" if extra else text


def formatter(fmt: str) -> logging.Formatter:
    if fmt not in FORMATS:
        raise ValueError(f"log format must be one of {', '.join(FORMATS)}")
    return JsonFormatter() if fmt == "json" else TextFormatter()


def configure_logging(fmt: str, level_name: str) -> None:
    """Route the root logger to stderr in `fmt`, once per process. Left alone when something else (a test
    runner) has configured the root logger already."""
    root = logging.getLogger()
    root.setLevel(getattr(logging, level_name.upper(), logging.INFO))
    if root.handlers:
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter(fmt))
    root.addHandler(handler)


def uvicorn_log_config(fmt: str, level_name: str) -> dict[str, Any]:
    """uvicorn's own loggers ("Started server process", "Waiting for application startup") in the same format,
    so every line on stderr parses alike. uvicorn's access log stays off (it would log query strings)."""
    factory = "app.logging_setup.JsonFormatter" if fmt == "json" else "app.logging_setup.TextFormatter"
    level = level_name.upper()
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"hallmark": {"()": factory}},
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "formatter": "hallmark",
                "stream": "ext://sys.stderr",
            }
        },
        "loggers": {
            "uvicorn": {"handlers": ["stderr"], "level": level, "propagate": False},
            "uvicorn.error": {"level": level},
            "uvicorn.access": {"handlers": [], "level": "WARNING", "propagate": False},
        },
    }


class RequestLog:
    """Outermost middleware: binds the request id (a safe client `X-Request-Id`, else a new one), returns it
    in the `X-Request-Id` response header, counts the response by status, and logs one line per request."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        offered = None
        for name, value in scope.get("headers", ()):
            if name == b"x-request-id":
                offered = value.decode("latin-1")
                break
        request_id = accept_request_id(offered)
        token = bind_request_id(request_id)
        started = time.perf_counter()
        status = 500  # what the server answers if the app raises before it starts a response

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                MutableHeaders(scope=message)[HEADER] = request_id
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            HTTP_REQUESTS.labels(str(status)).inc()
            ACCESS.info(
                "request",
                extra={
                    "request_id": request_id,
                    "method": scope.get("method"),
                    "path": scope.get("path"),
                    "status": status,
                    "duration_ms": round((time.perf_counter() - started) * 1000, 1),
                },
            )
            unbind_request_id(token)
