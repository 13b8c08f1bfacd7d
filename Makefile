# Two commands do all set-up: `make demo` and `make test` create .venv on first use.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-slow lint clean servers
# Root installs system packages directly; anyone else through sudo.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# Pinned: on this machine torch==2.13.0 is a CPU wheel on disk; an open range would pull a CUDA build.
	$(BIN)/pip install --quiet "torch==2.13.0"
	$(BIN)/pip install --quiet -e ".[dev,text]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/freshrec demo

# Unit and integration tests (a few minutes); `test-slow` runs what is marked slow: benchmark smoke runs,
# compiled kernels and fault injection. CI (.ci/run) runs both.
test: $(STAMP) servers
	$(BIN)/python -m pytest

test-slow: $(STAMP) servers
	$(BIN)/python -m pytest -m slow

# The real servers and browser some tests start: redis-server on free loopback ports, and headless Chromium
# with its driver for the dashboard (Debian packages), installed when missing.
servers:
	@command -v redis-server >/dev/null 2>&1 || { $(SUDO) apt-get install -y -qq redis-server >/dev/null 2>&1 || \
	  { $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq redis-server; }; }
	@{ [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; } || \
	  { $(SUDO) apt-get install -y -qq chromium chromium-driver >/dev/null 2>&1 || \
	  { $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq chromium chromium-driver; }; }

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/lint-imports

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
