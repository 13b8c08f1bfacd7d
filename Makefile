# Two commands do all set-up: `make demo` and `make test` create .venv on first use.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-slow lint clean

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
test: $(STAMP)
	$(BIN)/python -m pytest

test-slow: $(STAMP)
	$(BIN)/python -m pytest -m slow

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/lint-imports

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
