# Two entry points for a newcomer: `make lab` and `make test`.
# Everything is installed into .venv inside the checkout; nothing by hand.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: lab serve serve-postgres test lint clean

# nbconvert reads .venv/etc/jupyter: executed notebooks then keep no widget state
# (~65 KB each, never shown) and no per-cell timings (noise in every diff).
$(STAMP): pyproject.toml jupyter_nbconvert_config.json
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[lab,test]"
	mkdir -p $(VENV)/etc/jupyter
	cp jupyter_nbconvert_config.json $(VENV)/etc/jupyter/
	touch $(STAMP)

# Jupyter refuses to run as root unless told; containers often are root.
ROOT_FLAG := $(if $(filter 0,$(shell id -u)),--allow-root)

lab: $(STAMP)
	$(BIN)/jupyter lab notebooks/ $(ROOT_FLAG)

serve: $(STAMP)
	$(BIN)/python -m dmlab serve --port 8443 --data .dmlab-data --account demo:demo-password

# The same server with its state in a throwaway PostgreSQL (removed when it stops).
serve-postgres: $(STAMP)
	$(BIN)/python -m dmlab serve --port 8443 --data .dmlab-data --account demo:demo-password \
		--database throwaway-postgresql

test: $(STAMP)
	$(BIN)/python -m pytest

# ruff (lint + format) and mypy: CI runs this before the tests.
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

clean:
	rm -rf $(VENV) .pytest_cache
