# Steward — the targets CI calls too. `make help` lists them.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: help demo test lint format install migrate seed serve bench worker clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(BIN)/activate: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(BIN)/activate

install: $(BIN)/activate ## Create .venv and install Steward with its dev tools

migrate: install ## Apply database migrations
	DEBUG=$${DEBUG:-true} $(PY) manage.py migrate --noinput

seed: migrate ## Load the Northwind demo organisation (idempotent)
	DEBUG=$${DEBUG:-true} $(PY) manage.py seed_demo

serve: install ## Serve the portal on http://$(HOST):$(PORT)
	DEBUG=$${DEBUG:-true} $(PY) manage.py runserver $(HOST):$(PORT)

demo: seed ## Install, migrate, seed and serve the demo on the embedded default (SQLite)
	@echo "Steward is starting on http://$(HOST):$(PORT)/admin/ (Ctrl-C to stop)"
	DEBUG=$${DEBUG:-true} $(PY) manage.py runserver $(HOST):$(PORT)

lint: install ## Ruff lint and format check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install ## Apply Ruff fixes and formatting
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

test: lint ## Lint, then run the test suite (DATABASE_URL / CELERY_BROKER_URL as set)
	DEBUG=$${DEBUG:-true} $(PY) manage.py makemigrations --check --dry-run
	DEBUG=$${DEBUG:-true} $(PY) -m pytest

bench: install ## Performance benchmark (ratios, not timed assertions)
	DEBUG=$${DEBUG:-true} $(PY) bench/run.py

worker: install ## A Celery worker (needs CELERY_BROKER_URL)
	$(BIN)/celery -A governance worker -B -l info

clean: ## Remove the virtualenv and the embedded database
	rm -rf $(VENV) steward.sqlite3 staticfiles
