"""Benchmarks (`python -m bench.NAME`). Importing `app` first gives every bench the service's numeric
thread setting (one BLAS thread, see app/__init__.py) before numpy loads."""

import app  # noqa: F401
