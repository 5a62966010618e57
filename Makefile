# Hallmark: the README's commands. Only python3, make and apt are assumed on the machine.
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: install run test lint types test-deps openapi bench clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet -e '.[dev]'
	touch $@

run: install
	$(VENV)/bin/hallmark serve --dev --host $(HOST) --port $(PORT)

lint: install
	$(VENV)/bin/ruff check signing app tests bench scripts
	$(VENV)/bin/ruff format --check signing app tests bench scripts
	$(VENV)/bin/lint-imports

types: install
	$(VENV)/bin/mypy

# System tools some tests need (ffmpeg, node for the conformance rubric); installed by the project itself.
test-deps:
	bash scripts/test-deps.sh

test: install lint types test-deps
	$(PY) -m pytest

openapi: install
	$(PY) -m app.openapi > openapi/openapi.json

bench: install
	$(PY) bench/sign_overhead.py

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
