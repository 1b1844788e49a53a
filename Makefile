# The two set-up commands of the README. Both build .venv on a fresh machine.
# torch==2.13.0 goes in first so pip never resolves a CUDA build of plain `torch`.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: venv test demo bench

$(BIN)/aligniform: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[dev,text]'
	touch $@

venv: $(BIN)/aligniform

test: venv
	$(BIN)/python -m pytest -n 2 tests

demo: venv
	$(BIN)/aligniform demo --out demo_out
