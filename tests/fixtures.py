"""Where the vendored test fixtures live: inside the repository, so a fresh clone needs nothing beside it."""

from __future__ import annotations

from pathlib import Path

FIXTURES = Path(__file__).resolve().parent / "fixtures"
INTEROP = FIXTURES / "interop"
TRUST_LISTS = FIXTURES / "trust"
CONFORMANCE = FIXTURES / "conformance"
