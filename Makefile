# deepscope: every command a person runs is here and in the README.
PY ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
DATA_DIR ?= ./deepscope-data
PORT ?= 8050
PYTEST_ARGS ?=

.PHONY: setup demo test test-fast bench browser-deps deploy-deps clean

$(BIN)/python:
	$(PY) -m venv $(VENV)

# torch first and pinned: an unpinned torch would pull gigabytes of CUDA wheels.
$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/pip install torch==2.13.0
	$(BIN)/pip install -e ".[test,deploy]"
	touch $@

setup: $(VENV)/.installed

demo: setup
	$(BIN)/deepscope demo --data-dir $(DATA_DIR) --port $(PORT)

# Debian's chromium + chromium-driver for the browser tests, installed when missing.
browser-deps:
	@command -v chromedriver >/dev/null && command -v chromium >/dev/null || \
	  { apt-get update -q && apt-get install -y -q chromium chromium-driver; } || \
	  { sudo apt-get update -q && sudo apt-get install -y -q chromium chromium-driver; }

# Debian's postgresql + redis-server for tests/deploy (the docker-compose topology, started natively),
# installed when missing; PostgreSQL's binaries live in /usr/lib/postgresql/N/bin, off PATH.
deploy-deps:
	@{ command -v initdb >/dev/null || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; } && \
	  command -v redis-server >/dev/null && command -v redis-cli >/dev/null || \
	  { apt-get update -q && apt-get install -y -q postgresql redis-server; } || \
	  { sudo apt-get update -q && sudo apt-get install -y -q postgresql redis-server; }

test: setup browser-deps deploy-deps
	$(BIN)/python -m pytest --headless $(PYTEST_ARGS)

test-fast: setup
	$(BIN)/python -m pytest -m "not browser and not slow" $(PYTEST_ARGS)

bench: setup
	$(BIN)/python bench/overhead.py
	$(BIN)/python bench/live_update.py

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache
