"""Tolerant lookups in the engine's JSON: it carries attacker-controlled assertion data, so every value
may have the wrong shape, and a wrong shape reads as absent."""

from __future__ import annotations

from typing import Any


def as_str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def as_dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []
