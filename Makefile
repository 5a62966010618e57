# Hallmark: the README's commands. Only python3, make and apt are assumed on the machine.
VENV ?= .venv
PY := $(VENV)/bin/python
# Quiet: errors only (the build backend's notices are warnings, not errors).
PIP := PYTHONWARNINGS=ignore $(PY) -m pip --quiet --disable-pip-version-check
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: install run test lint types test-deps openapi bench wheel clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PIP) install --upgrade pip
	$(PIP) install -e '.[dev]'
	touch $@

run: install
	@$(VENV)/bin/hallmark serve --dev --host $(HOST) --port $(PORT)

lint: install
	$(VENV)/bin/ruff check signing app tests bench scripts
	$(VENV)/bin/ruff format --check signing app tests bench scripts
	$(VENV)/bin/lint-imports
	$(VENV)/bin/hadolint Dockerfile

types: install
	$(VENV)/bin/mypy

# System tools some tests need (ffmpeg, node for the conformance rubric); installed by the project itself.
test-deps:
	bash scripts/test-deps.sh

# The second pass runs the tests that exercise the database again on PostgreSQL (a throw-away server the
# tests start themselves; tests/postgres.py). tests/integration/test_postgres.py runs on it in both passes.
POSTGRES_TESTS := tests/integration/test_ledger_and_api_keys.py tests/integration/test_revocation.py \
	tests/integration/test_manifest_repository.py tests/integration/test_durable_credentials.py \
	tests/integration/test_sbr_api.py tests/integration/test_readiness.py tests/integration/test_http_sign.py \
	tests/integration/test_idempotency.py tests/integration/test_key_policies.py tests/integration/test_jobs.py \
	tests/integration/test_sign_intents.py

# Test processes (pytest-xdist), each test file kept in one process: most of the suite waits on servers,
# subprocesses and timeouts, so two processes on 2 cores take about half the time of one.
TEST_JOBS ?= 2

test: install lint types test-deps
	$(PY) -m pytest -n $(TEST_JOBS) --dist loadfile
	HALLMARK_TEST_DATABASE=postgresql $(PY) -m pytest -q -n $(TEST_JOBS) --dist loadfile $(POSTGRES_TESTS)

openapi: install
	$(PY) -m app.openapi > openapi/openapi.json

bench: install
	$(PY) bench/sign_overhead.py

# What the Dockerfile installs: the project's wheel and the dependency versions of this environment.
wheel: install
	rm -rf dist
	$(PIP) wheel --no-deps --wheel-dir dist .
	$(PIP) freeze --exclude-editable > dist/constraints.txt

# Removes build and tool state only; the data directory (`hallmark --version` names it) is kept.
clean:
	rm -rf $(VENV) dist build *.egg-info .pytest_cache .mypy_cache .ruff_cache
