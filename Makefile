# deepscope: every command a person runs is here and in the README.
PY ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
DATA_DIR ?= ./deepscope-data
PYTEST_ARGS ?=

.PHONY: setup demo test test-fast bench browser-deps clean

$(BIN)/python:
	$(PY) -m venv $(VENV)

# torch first and pinned: an unpinned torch would pull gigabytes of CUDA wheels.
$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/pip install torch==2.13.0
	$(BIN)/pip install -e ".[test,deploy]"
	touch $@

setup: $(VENV)/.installed

demo: setup
	$(BIN)/deepscope demo --data-dir $(DATA_DIR)

# Debian's chromium + chromium-driver for the browser tests, installed when missing.
browser-deps:
	@command -v chromedriver >/dev/null && command -v chromium >/dev/null || \
	  { apt-get update -q && apt-get install -y -q chromium chromium-driver; } || \
	  { sudo apt-get update -q && sudo apt-get install -y -q chromium chromium-driver; }

test: setup browser-deps
	$(BIN)/python -m pytest --headless $(PYTEST_ARGS)

test-fast: setup
	$(BIN)/python -m pytest -m "not browser and not slow" $(PYTEST_ARGS)

bench: setup
	$(BIN)/python bench/overhead.py
	$(BIN)/python bench/live_update.py

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache
