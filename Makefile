# The two commands: `make run` (demo on SQLite at http://127.0.0.1:8000) and `make test`.
# `make run HOST=127.0.0.1:8080` serves (and the demo prints) another address.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1:8000
# Development settings that feedback/settings.py reads when it exists (git-ignored).
DOTENV_PATH ?= .env

.PHONY: run test test-fast lint format demo

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: requirements.txt | $(BIN)/python
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements.txt
	touch $@

$(VENV)/.installed-dev: requirements.txt requirements-dev.txt | $(BIN)/python
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@ $(VENV)/.installed

# TRL (and torch, ~1 GB) for the export compatibility tests: installed in CI, optional locally.
$(VENV)/.installed-trl: requirements-trl.txt | $(BIN)/python
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements-trl.txt
	touch $@

# Written once, never overwritten: DEBUG on and a freshly generated SECRET_KEY, readable by
# its owner only. The `python manage.py` lines of the README run with the same settings.
$(DOTENV_PATH):
	@umask 077 && $(PYTHON) -c 'import secrets; print("# Development settings written by make run; git-ignored, never for production.\nDEBUG=1\nSECRET_KEY=" + secrets.token_urlsafe(50))' > $@.tmp
	@mv $@.tmp $@
	@echo "Wrote development settings to $@ (DEBUG=1 and a new SECRET_KEY)."

run: $(VENV)/.installed $(DOTENV_PATH)
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py demo --address $(HOST)
	$(BIN)/python manage.py runserver $(HOST)

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	DEBUG=1 $(BIN)/mypy

format: $(VENV)/.installed-dev
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

test: lint $(if $(CI),$(VENV)/.installed-trl)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# Everyday work: the services, HTTP and command tests on SQLite, in a random order; no browser,
# no multi-process concurrency tests, no type check; on both cores (pytest-xdist): about 80 s.
test-fast: $(VENV)/.installed-dev
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -m "not browser" --ignore=tests/concurrency --ignore=tests/durability -q -n 2 $(PYTEST_ARGS)
