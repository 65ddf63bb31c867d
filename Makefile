# Two entry points for a newcomer: `make lab` and `make test`.
# Everything is installed into a venv inside the checkout; nothing by hand.
# `make test PYTHON=python3.13` runs the same on another Python, in its own venv.
PYTHON ?= python3
# The interpreter itself: pyenv's shims refuse versions that are not selected, so
# .ci/find-python also looks in pyenv's installed versions (it never downloads one).
PY := $(shell .ci/find-python $(PYTHON))
ifeq ($(PY),)
$(error no Python to build the venv with (see the message above))
endif
PYVER := $(shell $(PY) -c 'import sys; print("%d.%d" % sys.version_info[:2])')
# `.venv` for the default Python; `.venv-3.13` and so on for a chosen one, so that
# switching Python never reuses a venv built for another.
VENV ?= $(if $(filter file default,$(origin PYTHON)),.venv,.venv-$(PYVER))
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# A venv left by another interpreter (python3 upgraded, say) is rebuilt from scratch.
VENV_PYVER := $(shell $(BIN)/python -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)
STALE := $(and $(VENV_PYVER),$(filter-out $(PYVER),$(VENV_PYVER)))

.PHONY: lab serve serve-postgres test lint clean FORCE

# nbconvert reads .venv/etc/jupyter: executed notebooks then keep no widget state
# (~65 KB each, never shown) and no per-cell timings (noise in every diff).
$(STAMP): pyproject.toml jupyter_nbconvert_config.json $(if $(STALE),FORCE)
	$(PY) -m venv $(if $(STALE),--clear) $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[lab,test]"
	mkdir -p $(VENV)/etc/jupyter
	cp jupyter_nbconvert_config.json $(VENV)/etc/jupyter/
	touch $(STAMP)

# Jupyter refuses to run as root unless told; containers often are root.
ROOT_FLAG := $(if $(filter 0,$(shell id -u)),--allow-root)

# JupyterLab opens on the tour; its file browser shows the other notebooks beside it.
lab: $(STAMP)
	$(BIN)/jupyter lab notebooks/01-tour.ipynb $(ROOT_FLAG)

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
	rm -rf .venv .venv-3.* .pytest_cache
